import type { Command } from 'commander'
import { getVerb } from '../../verbs.js'

export function registerGet(parent: Command): void {
  getVerb(parent, 'API key', (client, id) => client.apiKeys.get(id))
}
