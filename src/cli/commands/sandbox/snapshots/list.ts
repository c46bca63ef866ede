import type { Command } from 'commander'
import { command, listOptions, listPages, run } from '../../../command.js'
import { renderPage } from '../../../output.js'

export function registerList(parent: Command): void {
  const cmd = listOptions(command(parent, 'list <sandbox-id>', "list a sandbox's snapshots, newest first"))
  run(cmd, async ({ client }, [id], opts) => {
    const c = await client()
    const page = await listPages(opts, (params) => c.sandboxes.snapshots.list(id as string, params))
    return { data: page, human: renderPage(page, ['id', 'name', 'state', 'size_bytes', 'created_at']) }
  })
}
