import type { Command } from 'commander'
import { command, run } from '../../command.js'
import { resolveDeployment } from '../deployments/resolve.js'

export function registerRestart(program: Command): void {
  const cmd = command(program, 'restart <deployment>', 'replace the running instances with fresh ones: the new ones are healthy before the old ones drain (no downtime)')
    .option('--env <environment>', 'the environment (default production)')
    .addHelpText('after', '\nExample:\n  miosa restart smile-dental --env production')
  run(cmd, async ({ client }, [ref], opts) => {
    const c = await client()
    const deployment = await resolveDeployment(c, ref as string)
    const result = await c.deployments.restart(deployment.id, opts.env === undefined ? {} : { environment: opts.env as string })
    return { data: result, human: `${deployment.slug} (${result.environment}) restarted: ${result.data.filter((i) => i.state === 'healthy').length} healthy instance(s) serve` }
  })
}
