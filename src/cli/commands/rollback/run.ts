import type { Command } from 'commander'
import { command, run } from '../../command.js'
import { resolveDeployment, versionRef } from '../deployments/resolve.js'

export function registerRollback(program: Command): void {
  const cmd = command(program, 'rollback <deployment>', 'serve an earlier ready version again (nothing is rebuilt); the route change is recorded')
    .requiredOption('--to <version>', 'the version number (16) or id (ver_…) to serve')
    .option('--env <environment>', 'the environment to re-point (default production)')
    .addHelpText('after', '\nExample:\n  miosa rollback smile-dental --to 16 --json')
  run(cmd, async ({ client }, [ref], opts) => {
    const c = await client()
    const deployment = await resolveDeployment(c, ref as string)
    const result = await c.deployments.rollback(deployment.id, {
      ...versionRef('--to', opts.to as string),
      ...(opts.env === undefined ? {} : { environment: opts.env as string }),
    })
    return {
      data: result,
      human: `${result.change.environment} of ${result.deployment.slug} now serves version ${result.version.version_number}: ${result.deployment.routes.find((r) => r.environment === result.change.environment)?.url ?? result.deployment.url}`,
    }
  })
}
