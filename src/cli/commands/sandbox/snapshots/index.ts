import type { Command } from 'commander'
import { registerDelete } from './delete.js'
import { registerGet } from './get.js'
import { registerList } from './list.js'

export function registerSnapshots(parent: Command): void {
  const group = parent.command('snapshots').description("list, show and delete a sandbox's snapshots (take one with `miosa sandbox snapshot`)")
  registerList(group)
  registerGet(group)
  registerDelete(group)
}
