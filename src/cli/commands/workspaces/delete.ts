import type { Command } from 'commander'
import { deleteVerb } from '../../verbs.js'

export function registerDelete(parent: Command): void {
  deleteVerb(parent, 'workspace', (client, id) => client.workspaces.delete(id))
}
