import type { Command } from 'commander'
import type { TenantPreviewDomain } from '../../../sdk/index.js'
import { command, run } from '../../command.js'
import { renderRecord } from '../../output.js'

const WORKSPACE = "the workspace (default: the organization's first)"

function show(domain: TenantPreviewDomain): string {
  const { instructions, ...rest } = domain
  return `${renderRecord(rest)}\n\n${instructions}`
}

function workspaceOf(opts: Record<string, unknown>): { workspace_id?: string } {
  return opts.workspace === undefined ? {} : { workspace_id: opts.workspace as string }
}

export function registerPreviewDomain(parent: Command): void {
  const group = parent
    .command('preview-domain')
    .description('your own preview domain (one per workspace): previews at <port>-<sandbox-slug>.<domain> once its CNAME is verified')
  const set = command(group, 'set <domain>', 'register the preview domain (replacing another); prints the DNS record to add')
    .option('--workspace <workspace-id>', WORKSPACE)
    .addHelpText(
      'after',
      `
Example:
  miosa tenant preview-domain set preview.yourproduct.com
  (add the CNAME record it prints, then)
  miosa tenant preview-domain verify`,
    )
  run(set, async ({ client }, [domain], opts) => {
    const result = await (await client()).tenant.previewDomain.set({ domain: domain as string, ...workspaceOf(opts) })
    return { data: result, human: show(result) }
  })
  const get = command(group, 'get', 'show the preview domain and whether it is verified').option('--workspace <workspace-id>', WORKSPACE)
  run(get, async ({ client }, _args, opts) => {
    const result = await (await client()).tenant.previewDomain.get(workspaceOf(opts))
    return { data: result, human: show(result) }
  })
  const verify = command(group, 'verify', 'check its CNAME to the edge and mark it verified (fails saying what DNS answered)').option(
    '--workspace <workspace-id>',
    WORKSPACE,
  )
  run(verify, async ({ client }, _args, opts) => {
    const result = await (await client()).tenant.previewDomain.verify(workspaceOf(opts))
    return { data: result, human: show(result) }
  })
  const remove = command(group, 'delete', "remove the preview domain: previews go back to the platform's hostnames").option(
    '--workspace <workspace-id>',
    WORKSPACE,
  )
  run(remove, async ({ client }, _args, opts) => {
    const result = await (await client()).tenant.previewDomain.delete(workspaceOf(opts))
    return { data: result, human: show(result) }
  })
}
