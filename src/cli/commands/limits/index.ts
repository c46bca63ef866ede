import type { Command } from 'commander'
import type { LimitsPatch, LimitsReport, MiosaClient } from '../../../sdk/index.js'
import { command, run } from '../../command.js'
import { renderTable } from '../../output.js'

// `miosa limits`: an organization's (or, with --workspace, a workspace's) limits and use;
// `miosa limits set key=value…` changes them (root key: --organization; an organization
// key: --workspace).

export function registerLimits(program: Command): void {
  const noun = command(program, 'limits', "show your organization's limits and current use (--workspace W: a workspace's)")
    .option('--workspace <id>', "a workspace's limits instead")
    .option('--organization <id>', 'which organization (root key; an organization key sees its own)')
    .addHelpText('after', '\nExamples:\n  miosa limits --json\n  miosa limits --workspace ws_… \n  miosa limits set running_sandboxes=2 vcpus=default --workspace ws_…')
  run(noun, async ({ client }, _args, opts) => {
    const c = await client()
    const report = typeof opts.workspace === 'string' ? await c.limits.workspace(opts.workspace) : await c.limits.organization(await organizationOf(c, opts))
    return { data: report, human: render(report) }
  })

  const set = command(noun, 'set <limits...>', 'set limits as resource=value (a number, or "default" to go back to the level above)')
    .option('--workspace <id>', "set a workspace's limits (organization key; within the organization's)")
    .option('--organization <id>', "set an organization's limits (root key)")
  run(set, async ({ client }, [pairs], opts) => {
    const c = await client()
    const patch = parseLimits(pairs as unknown as string[])
    const report =
      typeof opts.workspace === 'string' ? await c.limits.setWorkspace(opts.workspace, patch) : await c.limits.setOrganization(await organizationOf(c, opts), patch)
    return { data: report, human: render(report) }
  })
}

async function organizationOf(c: MiosaClient, opts: Record<string, unknown>): Promise<string> {
  if (typeof opts.organization === 'string') return opts.organization
  const who = await c.whoami()
  if (who.organization === null) throw new Error('the root key belongs to no organization: name one with --organization org_…')
  return who.organization.id
}

function parseLimits(pairs: readonly string[]): LimitsPatch {
  const patch: Record<string, number | null> = {}
  for (const pair of pairs) {
    const match = /^([a-z_]+)=(.+)$/.exec(pair.trim())
    if (match === null) throw new Error(`expected resource=value (e.g. running_sandboxes=2), got "${pair}"`)
    const [, key, raw] = match as unknown as [string, string, string]
    const value = raw === 'default' || raw === 'null' ? null : Number(raw)
    if (value !== null && !Number.isFinite(value)) throw new Error(`${key}: expected a number or "default", got "${raw}"`)
    patch[key] = value
  }
  return patch as LimitsPatch
}

function render(report: LimitsReport): string {
  const rows = Object.entries(report.resources).map(([resource, line]) => ({ resource, ...line }))
  const whose = report.workspace_id === null ? `organization ${report.organization_id}` : `workspace ${report.workspace_id}`
  return `limits of ${whose}\n\n${renderTable(rows, ['resource', 'used', 'limit', 'source'])}\n\n${report.notes.map((n) => `note: ${n}`).join('\n')}`
}
