import type { Command } from 'commander'
import { listVerb } from '../../verbs.js'

export function registerList(parent: Command): void {
  listVerb(parent, 'organization', ['id', 'slug', 'name', 'external_user_id', 'created_at'], (client, params) =>
    client.organizations.list(params),
  )
}
