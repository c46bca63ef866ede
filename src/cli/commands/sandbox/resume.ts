import type { Command } from 'commander'
import { sandboxVerb } from './common.js'

export function registerResume(parent: Command): void {
  sandboxVerb(parent, 'resume', 'resume a paused sandbox with every file in place', (client, id) => client.sandboxes.resume(id))
}
