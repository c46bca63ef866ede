import type { Command } from 'commander'
import { command, run } from '../../command.js'

export function registerRevoke(parent: Command): void {
  run(command(parent, 'revoke <token-id>', 'revoke a preview token: the preview refuses it within seconds'), async ({ client }, [id]) => {
    const token = await (await client()).previewTokens.revoke(id as string)
    return { data: token, human: `revoked ${token.id} at ${token.revoked_at}` }
  })
}
