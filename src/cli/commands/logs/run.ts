import type { Command } from 'commander'
import { command, run } from '../../command.js'

export function registerLogs(program: Command): void {
  const cmd = command(program, 'logs <version-id>', "print a version's build output; --follow streams it until the build ends")
    .option('--follow', 'keep printing new lines until the build ends')
    .addHelpText('after', '\nExamples:\n  miosa logs ver_… --follow\n  miosa logs ver_… --json      {"version_id", "logs"}')
  run(cmd, async ({ client, json, stdout }, [id], opts) => {
    const c = await client()
    if (opts.follow !== true) {
      const logs = await c.versions.logs(id as string)
      return { data: { version_id: id, logs }, human: logs === '' ? '(no output yet)' : logs }
    }
    const lines: string[] = []
    const end = await c.versions.followLogs(id as string, (line) => {
      if (json) lines.push(line)
      else stdout.write(`${line}\n`)
    })
    return {
      data: { version_id: id, logs: lines.length === 0 ? '' : `${lines.join('\n')}\n`, status: end.status, error: end.error },
      human: end.status === 'failed' ? `build failed: ${end.error ?? 'unknown error'}` : '',
      exitCode: end.status === 'failed' ? 1 : 0,
    }
  })
}
