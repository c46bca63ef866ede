import type { Command } from 'commander'
import { listVerb } from '../../verbs.js'

export function registerList(parent: Command): void {
  listVerb(
    parent,
    'project',
    ['id', 'slug', 'name', 'workspace_id', 'external_project_id', 'created_at'],
    (client, params) => client.projects.list(params),
    {
      options: (cmd) => cmd.option('--workspace <workspace-id>', 'only projects of this workspace'),
      filters: (opts) => (opts.workspace === undefined ? {} : { workspace_id: opts.workspace }),
    },
  )
}
