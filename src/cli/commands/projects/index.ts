import type { Command } from 'commander'
import { registerCreate } from './create.js'
import { registerDelete } from './delete.js'
import { registerGet } from './get.js'
import { registerList } from './list.js'
import { registerUpdate } from './update.js'

export function registerProjects(program: Command): void {
  const noun = program.command('projects').description('manage projects (the apps and sites inside a workspace)')
  registerCreate(noun)
  registerList(noun)
  registerGet(noun)
  registerUpdate(noun)
  registerDelete(noun)
}
