import type { Command } from 'commander'
import { getVerb } from '../../verbs.js'

export function registerGet(parent: Command): void {
  getVerb(parent, 'organization', (client, id) => client.organizations.get(id))
}
