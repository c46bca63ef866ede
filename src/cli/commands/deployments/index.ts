import type { Command } from 'commander'
import { command, run } from '../../command.js'
import { renderRecord, renderTable } from '../../output.js'
import { listVerb } from '../../verbs.js'
import { DEPLOYMENT_COLUMNS, resolveDeployment } from './resolve.js'

export function registerDeployments(program: Command): void {
  const noun = program
    .command('deployments')
    .description('published apps: each has a stable URL and serves one version per environment (publish with `miosa deploy`)')
  listVerb(noun, 'deployment', DEPLOYMENT_COLUMNS, (client, params) => client.deployments.list(params), {
    options: (cmd) =>
      cmd
        .option('--workspace <workspace-id>', 'only deployments of this workspace')
        .option('--project <project-id>', 'only deployments of this project'),
    filters: (opts) => ({
      ...(opts.workspace === undefined ? {} : { workspace_id: opts.workspace }),
      ...(opts.project === undefined ? {} : { project_id: opts.project }),
    }),
  })
  run(command(noun, 'get <deployment>', 'show one deployment (by id or slug): its URL and the version each environment serves'), async ({ client }, [ref]) => {
    const deployment = await resolveDeployment(await client(), ref as string)
    const { routes, ...rest } = deployment
    return { data: deployment, human: `${renderRecord(rest)}\n\n${renderTable(routes, ['environment', 'active_version_id', 'url'])}` }
  })
}
