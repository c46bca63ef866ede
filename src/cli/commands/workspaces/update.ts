import type { Command } from 'commander'
import type { UpdateWorkspaceInput } from '../../../sdk/index.js'
import { attributionFrom, attributionOptions, command, run } from '../../command.js'
import { renderRecord } from '../../output.js'

export function registerUpdate(parent: Command): void {
  const cmd = attributionOptions(command(parent, 'update <id>', 'rename a workspace or change its attribution').option('--name <name>', 'new name'))
  run(cmd, async ({ client }, [id], opts) => {
    const input = { ...(opts.name === undefined ? {} : { name: opts.name }), ...attributionFrom(opts) } as UpdateWorkspaceInput
    const workspace = await (await client()).workspaces.update(id as string, input)
    return { data: workspace, human: renderRecord(workspace) }
  })
}
