import type { Command } from 'commander'
import { sandboxVerb } from './common.js'

export function registerStop(parent: Command): void {
  sandboxVerb(parent, 'stop', 'stop a sandbox: compute stops, its files are kept (state paused)', (client, id) => client.sandboxes.stop(id))
}
