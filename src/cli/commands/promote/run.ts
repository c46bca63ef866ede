import type { Command } from 'commander'
import { command, run } from '../../command.js'
import { resolveDeployment, versionRef } from '../deployments/resolve.js'

export function registerPromote(program: Command): void {
  const cmd = command(program, 'promote <deployment>', 'point an environment at a ready version (nothing is rebuilt); the route change is recorded')
    .requiredOption('--version <version>', 'the version number (18) or id (ver_…) to serve')
    .option('--env <environment>', 'the environment to point at it (default production)')
    .addHelpText('after', '\nExample:\n  miosa promote smile-dental --version 18 --env production --json')
  run(cmd, async ({ client }, [ref], opts) => {
    const c = await client()
    const deployment = await resolveDeployment(c, ref as string)
    const result = await c.deployments.promote(deployment.id, {
      ...versionRef('--version', opts.version as string),
      ...(opts.env === undefined ? {} : { environment: opts.env as string }),
    })
    return {
      data: result,
      human: `${result.change.environment} of ${result.deployment.slug} now serves version ${result.version.version_number}: ${result.deployment.routes.find((r) => r.environment === result.change.environment)?.url ?? result.deployment.url}`,
    }
  })
}
