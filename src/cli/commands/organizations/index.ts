import type { Command } from 'commander'
import { registerCreate } from './create.js'
import { registerCreateKey } from './create-key.js'
import { registerGet } from './get.js'
import { registerList } from './list.js'

export function registerOrganizations(program: Command): void {
  const noun = program
    .command('organizations')
    .alias('orgs')
    .description('manage organizations (needs the platform root key)')
  registerCreate(noun)
  registerList(noun)
  registerGet(noun)
  registerCreateKey(noun)
}
