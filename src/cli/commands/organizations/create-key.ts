import type { Command } from 'commander'
import { command, run } from '../../command.js'
import { renderRecord } from '../../output.js'
import { keyNotice } from '../api-keys/create.js'

export function registerCreateKey(parent: Command): void {
  const cmd = command(parent, 'create-key <organization-id>', "mint an organization's API key (root key); shown once").option(
    '--name <name>',
    'what the key is for',
  )
  run(cmd, async ({ client }, [organizationId], opts) => {
    const created = await (await client()).organizations.createApiKey(
      organizationId as string,
      opts.name === undefined ? {} : { name: opts.name as string },
    )
    return { data: created, human: `${renderRecord(created)}\n\n${keyNotice}` }
  })
}
