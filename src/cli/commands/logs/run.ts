import type { Command } from 'commander'
import { command, run } from '../../command.js'
import { resolveDeployment } from '../deployments/resolve.js'
import type { RuntimeLogEvent } from '../../../sdk/index.js'

// `miosa logs ver_…` is a version's build output; `miosa logs <deployment>` (id or slug)
// the runtime output of its instances.

export function registerLogs(program: Command): void {
  const cmd = command(program, 'logs <deployment-or-version>', "a deployment's runtime logs (its instances' stdout and stderr), or a version's build output (ver_…); --follow keeps streaming")
    .option('--follow', 'keep printing new lines (until Ctrl-C for a deployment; until the build ends for a version)')
    .option('--env <environment>', 'the environment of a deployment (default production)')
    .option('--tail <n>', 'lines per instance from before now (default 100)', (v) => Number.parseInt(v, 10))
    .addHelpText(
      'after',
      '\nExamples:\n  miosa logs smile-dental --follow\n  miosa logs smile-dental --json      {"deployment_id", "lines": [{instance_id, stream, timestamp, line}]}\n  miosa logs ver_… --follow\n  miosa logs ver_… --json            {"version_id", "logs"}',
    )
  run(cmd, async ({ client, json, stdout }, [ref], opts) => {
    const c = await client()
    const id = ref as string
    if (id.startsWith('ver_')) {
      if (opts.follow !== true) {
        const logs = await c.versions.logs(id)
        return { data: { version_id: id, logs }, human: logs === '' ? '(no output yet)' : logs }
      }
      const lines: string[] = []
      const end = await c.versions.followLogs(id, (line) => {
        if (json) lines.push(line)
        else stdout.write(`${line}\n`)
      })
      return {
        data: { version_id: id, logs: lines.length === 0 ? '' : `${lines.join('\n')}\n`, status: end.status, error: end.error },
        human: end.status === 'failed' ? `build failed: ${end.error ?? 'unknown error'}` : '',
        exitCode: end.status === 'failed' ? 1 : 0,
      }
    }
    const deployment = await resolveDeployment(c, id)
    const params = { ...(opts.env === undefined ? {} : { environment: opts.env as string }), ...(opts.tail === undefined ? {} : { tail: opts.tail as number }) }
    const show = (l: RuntimeLogEvent) => `${l.timestamp} ${l.instance_id} ${l.stream === 'stderr' ? 'err' : 'out'} | ${l.line}`
    if (opts.follow !== true) {
      const lines = await c.deployments.logs(deployment.id, params)
      return { data: { deployment_id: deployment.id, lines }, human: lines.length === 0 ? '(no output)' : lines.map(show).join('\n') }
    }
    // Follows until interrupted: each line as it comes (JSON lines with --json).
    const controller = new AbortController()
    process.once('SIGINT', () => controller.abort())
    await c.deployments.followLogs(
      deployment.id,
      (line) => stdout.write(json ? `${JSON.stringify(line)}\n` : `${show(line)}\n`),
      { ...params, signal: controller.signal },
    )
    return { data: undefined, human: '' }
  })
}
