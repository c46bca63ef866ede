import type { Command } from 'commander'
import { command, run } from '../../command.js'
import { renderTable } from '../../output.js'
import { resolveDeployment } from '../deployments/resolve.js'

const INSTANCE_COLUMNS = ['id', 'state', 'version_number', 'exit_code', 'created_at', 'healthy_at'] as const

export function registerInstances(program: Command): void {
  const noun = program.command('instances').description("the runtime instances serving a dynamic deployment's active version")
  const list = command(noun, 'list <deployment>', 'list the instances of an environment, the latest reconciler events, and why instances keep failing if they do')
    .option('--env <environment>', 'the environment (default production)')
    .option('--events <n>', 'how many of the newest events to show (default 10)', (v) => Number.parseInt(v, 10))
    .addHelpText('after', '\nExample:\n  miosa instances list smile-dental --json')
  run(list, async ({ client }, [ref], opts) => {
    const c = await client()
    const deployment = await resolveDeployment(c, ref as string)
    const result = await c.deployments.instances(deployment.id, {
      ...(opts.env === undefined ? {} : { environment: opts.env as string }),
      events: (opts.events as number | undefined) ?? 10,
    })
    const lines = [`${deployment.slug} (${result.environment}): ${result.data.length} of ${result.desired} desired`]
    if (result.data.length > 0) lines.push('', renderTable(result.data, INSTANCE_COLUMNS))
    if (result.crash_loop !== null) {
      const { failures, last_exit_code, next_start_at, last_logs } = result.crash_loop
      lines.push('', `crash loop: ${failures} failures in a row, last exit ${last_exit_code ?? 'none'}${next_start_at === null ? '' : `, next start at ${next_start_at}`}`)
      for (const line of last_logs.slice(-10)) lines.push(`  | ${line}`)
    }
    if (result.events.length > 0) {
      lines.push('', 'events (newest first):')
      for (const e of result.events) lines.push(`  ${e.created_at}  ${e.type.padEnd(14)} ${e.message}`)
    }
    return { data: result, human: lines.join('\n') }
  })
}
