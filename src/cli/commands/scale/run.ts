import type { Command } from 'commander'
import { command, run } from '../../command.js'
import { resolveDeployment } from '../deployments/resolve.js'

export function registerScale(program: Command): void {
  const cmd = command(program, 'scale <deployment>', 'set how many runtime instances serve each environment; extra ones drain (in-flight requests finish) before they stop')
    .requiredOption('--instances <n>', 'the desired instance count (0–20)', (value) => {
      const n = Number(value)
      if (!/^\d+$/.test(value.trim()) || n > 20) throw new Error(`--instances expects a whole number from 0 to 20, got "${value}"`)
      return n
    })
    .addHelpText('after', '\nExample:\n  miosa scale smile-dental --instances 3 --json')
  run(cmd, async ({ client }, [ref], opts) => {
    const c = await client()
    const deployment = await resolveDeployment(c, ref as string)
    const updated = await c.deployments.update(deployment.id, { instances: opts.instances as number })
    return { data: updated, human: `${updated.slug} now runs ${updated.instances} instance${updated.instances === 1 ? '' : 's'} per environment (see \`miosa instances list ${updated.slug}\`)` }
  })
}
