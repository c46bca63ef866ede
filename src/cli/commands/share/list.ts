import type { Command } from 'commander'
import { command, listOptions, listPages, run } from '../../command.js'
import { renderPage } from '../../output.js'

export function registerList(parent: Command): void {
  const cmd = listOptions(command(parent, 'list <sandbox-id>', "list a sandbox's share links, newest first; never their tokens"))
  run(cmd, async ({ client }, [id], opts) => {
    const c = await client()
    const page = await listPages(opts, (params) => c.shareTokens.list({ ...params, sandbox_id: id as string }))
    return { data: page, human: renderPage(page, ['id', 'name', 'token_prefix', 'port', 'has_password', 'expires_at', 'revoked_at', 'created_at']) }
  })
}
