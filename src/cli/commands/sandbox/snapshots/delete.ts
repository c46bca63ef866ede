import type { Command } from 'commander'
import { command, run } from '../../../command.js'

export function registerDelete(parent: Command): void {
  run(command(parent, 'delete <snapshot-id>', 'delete a snapshot (refused while sandboxes created from it exist)'), async ({ client }, [id]) => {
    const result = await (await client()).sandboxes.snapshots.delete(id as string)
    return { data: result, human: `deleted snapshot ${id}` }
  })
}
