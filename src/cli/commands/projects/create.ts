import type { Command } from 'commander'
import type { CreateProjectInput } from '../../../sdk/index.js'
import { attributionFrom, attributionOptions, command, run } from '../../command.js'
import { renderRecord } from '../../output.js'

export function registerCreate(parent: Command): void {
  const cmd = attributionOptions(
    command(parent, 'create <name>', 'create a project in a workspace')
      .requiredOption('--workspace <workspace-id>', 'the workspace it belongs to')
      .option('--slug <slug>', 'DNS-safe slug, unique in the workspace (default: from the name)'),
  )
  run(cmd, async ({ client }, [name], opts) => {
    const input = {
      workspace_id: opts.workspace,
      name,
      ...(opts.slug === undefined ? {} : { slug: opts.slug }),
      ...attributionFrom(opts),
    } as CreateProjectInput
    const project = await (await client()).projects.create(input)
    return { data: project, human: renderRecord(project) }
  })
}
