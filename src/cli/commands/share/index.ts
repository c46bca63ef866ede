import type { Command } from 'commander'
import { registerCreate } from './create.js'
import { registerList } from './list.js'
import { registerRevoke } from './revoke.js'

export function registerShare(program: Command): void {
  const noun = program
    .command('share')
    .description('share links (ms_…): revocable links to a sandbox preview for anyone who has them, optionally with a password')
  registerCreate(noun)
  registerList(noun)
  registerRevoke(noun)
}
