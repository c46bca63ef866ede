import type { Command } from 'commander'
import { listVerb } from '../../verbs.js'
import { SANDBOX_COLUMNS } from './common.js'

export function registerList(parent: Command): void {
  listVerb(parent, 'sandbox', SANDBOX_COLUMNS, (client, params) => client.sandboxes.list(params), {
    options: (cmd) =>
      cmd
        .option('--state <state>', 'only sandboxes in this state: creating, running, paused, snapshotting, destroyed, error')
        .option('--template <name>', 'only sandboxes of this template')
        .option('--workspace <workspace-id>', 'only sandboxes of this workspace')
        .option('--project <project-id>', 'only sandboxes of this project'),
    filters: (opts) => ({
      ...(opts.state === undefined ? {} : { state: opts.state }),
      ...(opts.template === undefined ? {} : { template: opts.template }),
      ...(opts.workspace === undefined ? {} : { workspace_id: opts.workspace }),
      ...(opts.project === undefined ? {} : { project_id: opts.project }),
    }),
  })
}
