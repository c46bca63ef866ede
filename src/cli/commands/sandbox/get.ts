import type { Command } from 'commander'
import { getVerb } from '../../verbs.js'

export function registerGet(parent: Command): void {
  getVerb(parent, 'sandbox', (client, id) => client.sandboxes.get(id))
}
