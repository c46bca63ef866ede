import type { Command } from 'commander'
import { command, run } from '../../../command.js'
import { renderRecord } from '../../../output.js'

export function registerGet(parent: Command): void {
  run(command(parent, 'get <snapshot-id>', 'show one snapshot'), async ({ client }, [id]) => {
    const snapshot = await (await client()).sandboxes.snapshots.get(id as string)
    return { data: snapshot, human: renderRecord(snapshot) }
  })
}
