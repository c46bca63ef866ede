import type { Command } from 'commander'
import type { CreateWorkspaceInput } from '../../../sdk/index.js'
import { attributionFrom, attributionOptions, command, run } from '../../command.js'
import { renderRecord } from '../../output.js'

export function registerCreate(parent: Command): void {
  const cmd = attributionOptions(
    command(parent, 'create <name>', 'create a workspace').option('--slug <slug>', 'DNS-safe slug, unique on the platform (default: from the name)'),
  )
  run(cmd, async ({ client }, [name], opts) => {
    const input = { name, ...(opts.slug === undefined ? {} : { slug: opts.slug }), ...attributionFrom(opts) } as CreateWorkspaceInput
    const workspace = await (await client()).workspaces.create(input)
    return { data: workspace, human: renderRecord(workspace) }
  })
}
