import type { Command } from 'commander'
import { command, run } from '../../command.js'

export function registerWhoami(program: Command): void {
  run(command(program, 'whoami', 'show which API and key the CLI uses'), async ({ client }) => {
    const c = await client()
    const who = await c.whoami()
    const as = who.kind === 'root' ? 'platform root' : `organization ${who.organization?.slug} (${who.organization?.id}), key ${who.api_key_id}`
    return { data: { api_url: c.apiUrl, ...who }, human: `${c.apiUrl}: ${as}` }
  })
}
