import type { Command } from 'commander'
import { registerCreate } from './create.js'
import { registerList } from './list.js'
import { registerRevoke } from './revoke.js'

export function registerPreviewToken(program: Command): void {
  const noun = program
    .command('preview-token')
    .description('preview tokens (mp_…): signed, short-lived grants to open one private sandbox preview in a browser')
  registerCreate(noun)
  registerList(noun)
  registerRevoke(noun)
}
