import type { Command } from 'commander'
import { registerUrl } from './url.js'

export function registerPreview(program: Command): void {
  const noun = program
    .command('preview')
    .description('sandbox previews: the URL of a port inside a sandbox, served by the edge (open it with a preview or share token unless the sandbox is public)')
  registerUrl(noun)
}
