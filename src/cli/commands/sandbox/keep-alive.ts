import type { Command } from 'commander'
import { command, run } from '../../command.js'

export function registerKeepAlive(parent: Command): void {
  const cmd = command(parent, 'keep-alive <sandbox-id>', 'reset the idle timer of a sandbox, optionally with a new timeout').option(
    '--timeout <duration>',
    'a new idle timeout: 10m, 1h, or seconds',
  )
  run(cmd, async ({ client }, [id], opts) => {
    const timeout = opts.timeout as string | undefined
    const input = timeout === undefined ? {} : { timeout: /^\d+$/.test(timeout.trim()) ? Number(timeout) : timeout }
    const sandbox = await (await client()).sandboxes.keepAlive(id as string, input)
    return { data: sandbox, human: `${sandbox.id} is ${sandbox.state}; idle until ${sandbox.expires_at ?? '-'}` }
  })
}
