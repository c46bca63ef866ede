import type { Command } from 'commander'
import { registerBranding } from './branding.js'
import { registerPreviewDomain } from './preview-domain.js'

export function registerTenant(program: Command): void {
  const noun = program
    .command('tenant')
    .description("a workspace's tenant settings: branding of the edge's pages, and its own preview domain")
  registerBranding(noun)
  registerPreviewDomain(noun)
}
