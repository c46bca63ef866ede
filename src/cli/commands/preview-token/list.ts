import type { Command } from 'commander'
import { command, listOptions, listPages, run } from '../../command.js'
import { renderPage } from '../../output.js'

export function registerList(parent: Command): void {
  const cmd = listOptions(command(parent, 'list [sandbox-id]', "list preview tokens (of one sandbox), newest first; never their values"))
  run(cmd, async ({ client }, [id], opts) => {
    const c = await client()
    const page = await listPages(opts, (params) => c.previewTokens.list({ ...params, ...(id === undefined ? {} : { sandbox_id: id }) }))
    return { data: page, human: renderPage(page, ['id', 'sandbox_id', 'port', 'expires_at', 'revoked_at', 'created_at']) }
  })
}
