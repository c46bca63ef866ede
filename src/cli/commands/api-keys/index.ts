import type { Command } from 'commander'
import { registerCreate } from './create.js'
import { registerGet } from './get.js'
import { registerList } from './list.js'
import { registerRevoke } from './revoke.js'

export function registerApiKeys(program: Command): void {
  const noun = program.command('api-keys').description("manage your organization's API keys")
  registerCreate(noun)
  registerList(noun)
  registerGet(noun)
  registerRevoke(noun)
}
