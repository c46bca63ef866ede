import type { Command } from 'commander'
import { listVerb } from '../../verbs.js'

export function registerList(parent: Command): void {
  listVerb(parent, 'API key', ['id', 'name', 'prefix', 'created_at', 'last_used_at', 'revoked_at'], (client, params) =>
    client.apiKeys.list(params),
  )
}
