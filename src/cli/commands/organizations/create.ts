import type { Command } from 'commander'
import type { CreateOrganizationInput } from '../../../sdk/index.js'
import { attributionFrom, attributionOptions, command, run } from '../../command.js'
import { renderRecord } from '../../output.js'

export function registerCreate(parent: Command): void {
  const cmd = attributionOptions(
    command(parent, 'create <name>', 'create an organization (root key)').option('--slug <slug>', 'DNS-safe slug (default: from the name)'),
  )
  run(cmd, async ({ client }, [name], opts) => {
    const input = { name, ...(opts.slug === undefined ? {} : { slug: opts.slug }), ...attributionFrom(opts) } as CreateOrganizationInput
    const org = await (await client()).organizations.create(input)
    return { data: org, human: renderRecord(org) }
  })
}
