import type { Command } from 'commander'
import { getVerb } from '../../verbs.js'

export function registerGet(parent: Command): void {
  getVerb(parent, 'workspace', (client, id) => client.workspaces.get(id))
}
