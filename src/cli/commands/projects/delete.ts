import type { Command } from 'commander'
import { deleteVerb } from '../../verbs.js'

export function registerDelete(parent: Command): void {
  deleteVerb(parent, 'project', (client, id) => client.projects.delete(id))
}
