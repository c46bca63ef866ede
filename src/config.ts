import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { z } from 'zod'
import { MiosaError } from './core/errors.js'

// Flags and environment, validated once. Everything else receives a Config and never
// reads process.env itself.

export interface Config {
  dataDir: string
  host: string
  port: number
  edgePort: number
  baseDomain: string
  /** postgres://… switches the store to PostgreSQL; unset keeps SQLite in the data dir. */
  databaseUrl: string | undefined
  /** MIOSA_ROOT_KEY: the platform root key, when the operator provides it. */
  rootKey: string | undefined
  bodyLimitBytes: number
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'
  /** Pretty, human logs instead of JSON lines: only when stdout is a terminal, unless forced. */
  logPretty: boolean
  shutdownTimeoutMs: number
}

export interface ServerFlags {
  dataDir?: string | undefined
  host?: string | undefined
  port?: string | number | undefined
  edgePort?: string | number | undefined
  baseDomain?: string | undefined
}

const port = z.coerce.number().int().min(0).max(65535)
const hostname = z
  .string()
  .min(1)
  .max(253)
  .regex(/^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i, 'must be a DNS name')

const sources = {
  dataDir: '--data-dir / MIOSA_DATA_DIR',
  host: '--host / MIOSA_HOST',
  port: '--port / MIOSA_PORT',
  edgePort: '--edge-port / MIOSA_EDGE_PORT',
  baseDomain: '--base-domain / MIOSA_BASE_DOMAIN',
  databaseUrl: 'MIOSA_DATABASE_URL',
  rootKey: 'MIOSA_ROOT_KEY',
  bodyLimitBytes: 'MIOSA_BODY_LIMIT_BYTES',
  logLevel: 'MIOSA_LOG_LEVEL',
  logPretty: 'MIOSA_LOG_PRETTY',
  shutdownTimeoutMs: 'MIOSA_SHUTDOWN_TIMEOUT_MS',
} satisfies Record<keyof Config, string>

const schema = z.object({
  dataDir: z.string().min(1),
  host: z.string().min(1),
  port,
  edgePort: port,
  baseDomain: hostname.transform((h) => h.toLowerCase()),
  databaseUrl: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
    .optional(),
  rootKey: z.string().optional(),
  bodyLimitBytes: z.coerce.number().int().min(1024),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
  logPretty: z.boolean(),
  shutdownTimeoutMs: z.coerce.number().int().min(0),
})

export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.XDG_DATA_HOME ? join(env.XDG_DATA_HOME, 'miosa') : join(homedir(), '.local', 'share', 'miosa')
}

export function loadConfig(flags: ServerFlags = {}, env: NodeJS.ProcessEnv = process.env): Config {
  const raw = {
    dataDir: resolve(flags.dataDir ?? env.MIOSA_DATA_DIR ?? defaultDataDir(env)),
    host: flags.host ?? env.MIOSA_HOST ?? '127.0.0.1',
    port: flags.port ?? env.MIOSA_PORT ?? 8080,
    edgePort: flags.edgePort ?? env.MIOSA_EDGE_PORT ?? 8081,
    baseDomain: flags.baseDomain ?? env.MIOSA_BASE_DOMAIN ?? 'localhost',
    databaseUrl: emptyToUndefined(env.MIOSA_DATABASE_URL),
    rootKey: emptyToUndefined(env.MIOSA_ROOT_KEY),
    bodyLimitBytes: env.MIOSA_BODY_LIMIT_BYTES ?? 1024 * 1024,
    logLevel: env.MIOSA_LOG_LEVEL ?? 'info',
    logPretty: env.MIOSA_LOG_PRETTY === undefined ? Boolean(process.stdout.isTTY) : env.MIOSA_LOG_PRETTY === '1',
    shutdownTimeoutMs: env.MIOSA_SHUTDOWN_TIMEOUT_MS ?? 10_000,
  }
  const result = schema.safeParse(raw)
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const key = issue.path[0] as keyof Config
      return `${sources[key] ?? String(key)}: ${issue.message}`
    })
    throw new MiosaError('invalid', `invalid configuration: ${problems.join('; ')}`, { details: { problems } })
  }
  return result.data as Config
}

function emptyToUndefined(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value
}
