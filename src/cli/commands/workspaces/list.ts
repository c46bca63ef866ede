import type { Command } from 'commander'
import { listVerb } from '../../verbs.js'

export function registerList(parent: Command): void {
  listVerb(parent, 'workspace', ['id', 'slug', 'name', 'external_workspace_id', 'created_at'], (client, params) =>
    client.workspaces.list(params),
  )
}
