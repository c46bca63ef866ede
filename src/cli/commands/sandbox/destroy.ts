import type { Command } from 'commander'
import { sandboxVerb } from './common.js'

export function registerDestroy(parent: Command): void {
  sandboxVerb(parent, 'destroy', 'destroy a sandbox for good: compute and files are gone (its snapshots stay)', (client, id) =>
    client.sandboxes.destroy(id),
  )
}
