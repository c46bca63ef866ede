import type { Command } from 'commander'
import { getVerb } from '../../verbs.js'

export function registerGet(parent: Command): void {
  getVerb(parent, 'project', (client, id) => client.projects.get(id))
}
