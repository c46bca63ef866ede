import type { Command } from 'commander'
import { registerCreate } from './create.js'
import { registerDelete } from './delete.js'
import { registerGet } from './get.js'
import { registerList } from './list.js'
import { registerUpdate } from './update.js'

export function registerWorkspaces(program: Command): void {
  const noun = program.command('workspaces').alias('ws').description('manage workspaces (one per downstream customer)')
  registerCreate(noun)
  registerList(noun)
  registerGet(noun)
  registerUpdate(noun)
  registerDelete(noun)
}
