import type { Command } from 'commander'
import type { CreateSnapshotInput } from '../../../sdk/index.js'
import { attributionFrom, attributionOptions, command, run } from '../../command.js'
import { renderRecord } from '../../output.js'

export function registerSnapshot(parent: Command): void {
  const cmd = attributionOptions(
    command(parent, 'snapshot <sandbox-id>', 'take a snapshot: a checkpoint to create a sandbox from (--snapshot) later').option(
      '--name <name>',
      'a name for the snapshot, e.g. "after dependencies installed"',
    ),
  )
  run(cmd, async ({ client, progress }, [id], opts) => {
    const input = { ...(opts.name === undefined ? {} : { name: opts.name }), ...attributionFrom(opts) } as CreateSnapshotInput
    const display = progress()
    display.update(`snapshotting ${id}…`)
    try {
      const snapshot = await (await client()).sandboxes.snapshots.create(id as string, input)
      return { data: snapshot, human: renderRecord(snapshot) }
    } finally {
      display.done()
    }
  })
}
