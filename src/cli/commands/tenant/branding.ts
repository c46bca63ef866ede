import type { Command } from 'commander'
import { command, run } from '../../command.js'
import { renderRecord } from '../../output.js'

const WORKSPACE = "the workspace (default: the organization's first)"

export function registerBranding(parent: Command): void {
  const group = parent
    .command('branding')
    .description("the logo, accent colour and support link on the pages the edge shows your end users (no miosa wordmark)")
  const set = command(group, 'set', 'set the branding (edges show it within 60 seconds)')
    .requiredOption('--logo-url <url>', 'https URL of your logo (PNG or SVG)')
    .requiredOption('--accent-color <hex>', 'accent colour, #rgb or #rrggbb')
    .option('--support-url <url>', 'https link shown on error pages for support')
    .option('--workspace <workspace-id>', WORKSPACE)
    .addHelpText(
      'after',
      `
Example:
  miosa tenant branding set --logo-url https://cdn.yourproduct.com/logo.svg --accent-color '#0f766e' --support-url https://yourproduct.com/help`,
    )
  run(set, async ({ client }, _args, opts) => {
    const branding = await (await client()).tenant.branding.set({
      logo_url: opts.logoUrl as string,
      accent_color: opts.accentColor as string,
      ...(opts.supportUrl === undefined ? {} : { support_url: opts.supportUrl as string }),
      ...(opts.workspace === undefined ? {} : { workspace_id: opts.workspace as string }),
    })
    return { data: branding, human: renderRecord(branding) }
  })
  const get = command(group, 'get', 'show the branding (nulls: the neutral look)').option('--workspace <workspace-id>', WORKSPACE)
  run(get, async ({ client }, _args, opts) => {
    const branding = await (await client()).tenant.branding.get(opts.workspace === undefined ? {} : { workspace_id: opts.workspace as string })
    return { data: branding, human: renderRecord(branding) }
  })
}
