import type { Command } from 'commander'
import type { ForkSandboxInput } from '../../../sdk/index.js'
import { attributionFrom, attributionOptions, command, run } from '../../command.js'
import { showSandbox } from './common.js'

export function registerFork(parent: Command): void {
  const cmd = attributionOptions(
    command(parent, 'fork <sandbox-id>', 'create a new sandbox from the current state of this one, leaving it untouched').option(
      '--name <name>',
      'a name for the fork',
    ),
  )
  run(cmd, async ({ client }, [id], opts) => {
    const input = { ...(opts.name === undefined ? {} : { name: opts.name }), ...attributionFrom(opts) } as ForkSandboxInput
    const fork = await (await client()).sandboxes.fork(id as string, input)
    return { data: fork, human: showSandbox(fork) }
  })
}
