import type { Command } from 'commander'
import { command, run } from '../../command.js'

export function registerRevoke(parent: Command): void {
  run(command(parent, 'revoke <token-id>', 'revoke a share link: it stops working within seconds'), async ({ client }, [id]) => {
    const share = await (await client()).shareTokens.revoke(id as string)
    return { data: share, human: `revoked ${share.id} (${share.token_prefix}…) at ${share.revoked_at}` }
  })
}
