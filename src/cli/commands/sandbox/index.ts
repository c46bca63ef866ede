import type { Command } from 'commander'
import { registerArchiveCommands } from './archive.js'
import { registerCreate } from './create.js'
import { registerDestroy } from './destroy.js'
import { registerExec } from './exec.js'
import { registerFileCommands } from './files.js'
import { registerFork } from './fork.js'
import { registerGet } from './get.js'
import { registerKeepAlive } from './keep-alive.js'
import { registerList } from './list.js'
import { registerResume } from './resume.js'
import { registerServices } from './services/index.js'
import { registerSnapshot } from './snapshot.js'
import { registerSnapshots } from './snapshots/index.js'
import { registerStop } from './stop.js'
import { registerTerminal } from './terminal.js'
import { registerUpdate } from './update.js'

export function registerSandbox(program: Command): void {
  const group = program
    .command('sandbox')
    .description('sandboxes: isolated workspaces to write files and run commands in, kept across stops, snapshotted and forked')
  registerCreate(group)
  registerList(group)
  registerGet(group)
  registerUpdate(group)
  registerExec(group)
  registerServices(group)
  registerFileCommands(group)
  registerArchiveCommands(group)
  registerTerminal(group)
  registerStop(group)
  registerResume(group)
  registerKeepAlive(group)
  registerSnapshot(group)
  registerSnapshots(group)
  registerFork(group)
  registerDestroy(group)
}
