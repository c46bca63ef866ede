import type { Command } from 'commander'
import { command, run } from '../../command.js'
import { renderRecord } from '../../output.js'

export const keyNotice = 'Store the key now: it is not shown again.'

export function registerCreate(parent: Command): void {
  const cmd = command(parent, 'create', 'mint another key of your organization; shown once').option('--name <name>', 'what the key is for')
  run(cmd, async ({ client }, _args, opts) => {
    const created = await (await client()).apiKeys.create(opts.name === undefined ? {} : { name: opts.name as string })
    return { data: created, human: `${renderRecord(created)}\n\n${keyNotice}` }
  })
}
