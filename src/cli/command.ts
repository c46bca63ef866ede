import { Option } from 'commander'
import type { Command } from 'commander'
import { MiosaClient } from '../sdk/index.js'
import { readCliConfig } from './config-file.js'
import { emit } from './output.js'
import type { Output } from './output.js'
import { Progress } from './progress.js'

// The shape every command shares: --json, a client built from flags > env > `miosa login`,
// and one place that prints the answer. Handlers return; they never exit. Only commands
// whose output is a stream (exec, read-file, terminal) write to stdout themselves, through
// the streams given here.

export interface ActionContext {
  client: () => Promise<MiosaClient>
  json: boolean
  stdin: NodeJS.ReadStream
  stdout: NodeJS.WriteStream
  stderr: NodeJS.WriteStream
  /** A progress display on stderr: a line on a terminal, plain lines in a pipe, JSON events with --json. */
  progress: () => Progress
}

/** The exit code the last command asked for; cli/main.ts sets the process's from it. */
let requestedExitCode = 0

export function commandExitCode(): number {
  return requestedExitCode
}

type Handler = (ctx: ActionContext, args: string[], opts: Record<string, unknown>) => Promise<Output>

/** A subcommand with --json and an action that returns its Output. */
export function command(parent: Command, spec: string, description: string): Command {
  return parent.command(spec).description(description).option('--json', 'print machine-readable JSON only')
}

export function run(cmd: Command, handler: Handler): Command {
  return cmd.action(async (...received: unknown[]) => {
    const self = received.at(-1) as Command
    const opts = self.optsWithGlobals<Record<string, unknown>>()
    const args = self.processedArgs as string[]
    const json = opts.json === true
    const ctx: ActionContext = {
      client: () => clientFor(opts),
      json,
      stdin: process.stdin,
      stdout: process.stdout,
      stderr: process.stderr,
      progress: () => new Progress(process.stderr, json ? 'json' : 'text'),
    }
    const output = await handler(ctx, args, opts)
    emit(output, json)
    requestedExitCode = output.exitCode ?? 0
  })
}

export async function clientFor(opts: Record<string, unknown>): Promise<MiosaClient> {
  const saved = await readCliConfig()
  return new MiosaClient({
    apiUrl: (opts.apiUrl as string | undefined) ?? nonEmpty(process.env.MIOSA_API_URL) ?? saved.api_url,
    apiKey: (opts.apiKey as string | undefined) ?? nonEmpty(process.env.MIOSA_API_KEY) ?? saved.api_key,
  })
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === '' ? undefined : value
}

export const collect = (value: string, previous: string[] = []) => [...previous, value]

/** --external-*-id and repeatable --metadata key=value, for create commands. */
export function attributionOptions(cmd: Command): Command {
  return cmd
    .option('--external-user-id <id>', 'your id of the user this belongs to')
    .option('--external-project-id <id>', 'your id of the project this belongs to')
    .option('--external-workspace-id <id>', 'your id of the workspace this belongs to')
    .option('--metadata <key=value>', 'a metadata pair (repeatable)', collect)
}

/** The same flags as list filters, plus paging. */
export function listOptions(cmd: Command): Command {
  return attributionOptions(cmd)
    .addOption(new Option('--limit <n>', 'items per page (1-200)').argParser((v) => Number.parseInt(v, 10)))
    .option('--cursor <cursor>', 'continue from a previous page')
    .option('--all', 'fetch every page')
}

/** The attribution fields of a request body (or list filter) from parsed options. */
export function attributionFrom(opts: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  if (opts.externalUserId !== undefined) out.external_user_id = opts.externalUserId
  if (opts.externalProjectId !== undefined) out.external_project_id = opts.externalProjectId
  if (opts.externalWorkspaceId !== undefined) out.external_workspace_id = opts.externalWorkspaceId
  if (opts.metadata !== undefined) out.metadata = parsePairs(opts.metadata as string[])
  return out
}

export function pageFrom(opts: Record<string, unknown>): Record<string, unknown> {
  return {
    ...attributionFrom(opts),
    ...(opts.limit === undefined ? {} : { limit: opts.limit }),
    ...(opts.cursor === undefined ? {} : { cursor: opts.cursor }),
  }
}

export function parsePairs(pairs: string[], flag = '--metadata'): Record<string, string> {
  const out: Record<string, string> = {}
  for (const pair of pairs) {
    const at = pair.indexOf('=')
    if (at <= 0) throw new Error(`${flag} expects key=value, got "${pair}"`)
    out[pair.slice(0, at)] = pair.slice(at + 1)
  }
  return out
}

/** One page, or with --all every page merged into one. */
export async function listPages<T>(
  opts: Record<string, unknown>,
  fetchPage: (params: Record<string, unknown>) => Promise<{ data: T[]; next_cursor: string | null }>,
): Promise<{ data: T[]; next_cursor: string | null }> {
  const params = pageFrom(opts)
  if (opts.all !== true) return fetchPage(params)
  const data: T[] = []
  let cursor: string | undefined
  do {
    const page = await fetchPage({ ...params, ...(cursor === undefined ? {} : { cursor }) })
    data.push(...page.data)
    cursor = page.next_cursor ?? undefined
  } while (cursor !== undefined)
  return { data, next_cursor: null }
}

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 }

/** Seconds of a duration flag: `90`, `90s`, `10m`, `1h`, `2d`; refused with the flag's name otherwise. */
export function durationFlag(flag: string): (value: string) => number {
  return (value) => {
    const match = value.trim().match(/^(\d+(?:\.\d+)?)\s*([smhd]?)$/i)
    const seconds = match === null ? Number.NaN : Number(match[1]) * (DURATION_UNITS[(match[2] || 's').toLowerCase()] ?? 1)
    if (!Number.isFinite(seconds) || seconds <= 0) throw new Error(`${flag} expects a duration like 90s, 10m, 1h or 2d, got "${value}"`)
    return Math.round(seconds)
  }
}

/** A port flag (1-65535), refused with the flag's name otherwise. */
export function portFlag(flag = '--port'): (value: string) => number {
  return (value) => {
    const port = Number(value)
    if (!/^\d+$/.test(value.trim()) || !Number.isInteger(port) || port < 1 || port > 65_535) {
      throw new Error(`${flag} expects a port number from 1 to 65535, got "${value}"`)
    }
    return port
  }
}
