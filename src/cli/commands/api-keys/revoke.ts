import type { Command } from 'commander'
import { command, run } from '../../command.js'

export function registerRevoke(parent: Command): void {
  run(command(parent, 'revoke <id>', 'revoke a key: it stops working at once'), async ({ client }, [id]) => {
    const key = await (await client()).apiKeys.revoke(id as string)
    return { data: key, human: `revoked ${key.id} (${key.prefix}…) at ${key.revoked_at}` }
  })
}
