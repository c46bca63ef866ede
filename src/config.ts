import { existsSync } from 'node:fs'
import { availableParallelism, homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { z } from 'zod'
import { MiosaError } from './core/errors.js'
import { parseMasterKey } from './core/secret-box.js'
import { DEFAULT_QUOTA_LIMITS } from './core/quotas.js'
import { QUOTA_LIMIT_MAX, QUOTA_RESOURCES } from './schemas/quotas.js'
import type { QuotaLimits, QuotaResource } from './schemas/quotas.js'

// Flags and environment, validated once. Everything else receives a Config and never
// reads process.env itself.

export interface Config {
  /** What this process runs: `all` (API, edge and worker: one machine), or `edge` (one more edge beside an `all` on the same PostgreSQL). */
  role: 'all' | 'edge'
  dataDir: string
  host: string
  port: number
  edgePort: number
  baseDomain: string
  /** postgres://… switches the store to PostgreSQL; unset keeps SQLite in the data dir. */
  databaseUrl: string | undefined
  /** MIOSA_ROOT_KEY: the platform root key, when the operator provides it. */
  rootKey: string | undefined
  /** MIOSA_MASTER_KEY: the key sealing env values (base64 or hex of 32 bytes); unset: `<data-dir>/master-key`, made on first start. */
  masterKey: string | undefined
  bodyLimitBytes: number
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'
  /** Pretty, human logs instead of JSON lines: only when stdout is a terminal, unless forced. */
  logPretty: boolean
  shutdownTimeoutMs: number
  /** Where built inputs shared by every platform on the machine live (Node.js downloads, build locks). */
  cacheDir: string
  /** Host path of the CA bundle injected into every container; undefined when none exists. */
  caBundle: string | undefined
  /** Template name → registry image to use instead of building it locally. */
  templateImages: Record<string, string>
  /** Debian mirror for building base images; default: the host's own apt source. */
  debianMirror: string | undefined
  /** Where templates/<name>/Dockerfile are read from (a customised copy); default: the package's own templates/. */
  templatesDir: string | undefined
  /** Started sandboxes kept ready per workspace and template, for instant creates; 0 turns the pool off. */
  sandboxWarmPool: number
  /** What a key's pool may grow to after a burst of creates asked for more at once. */
  sandboxWarmPoolMax: number
  /** How often idle sandboxes are looked for. */
  sandboxReaperIntervalMs: number
  /** Disk a sandbox's writable layer (with /workspace) may use, in MB, measured; past it file-API writes are refused. 0: no limit. */
  sandboxDiskMb: number
  /** How often running sandboxes' disk use is measured (also shortly after each file-API write). */
  sandboxDiskIntervalMs: number
  /** How often containers and the store are reconciled (also once at start). */
  reconcileIntervalMs: number
  /** How often runtime instances are reconciled (exits replaced, counts kept); health checks run on each deployment's own interval. */
  instanceReconcileIntervalMs: number
  /** Address range the per-workspace sandbox networks are carved from (one /24 each). */
  sandboxSubnets: string
  /**
   * How users reach the edge: scheme, and a port when not the scheme's own. Preview URLs
   * are built from it; undefined means http on the edge's listening port.
   */
  edgePublicUrl: string | undefined
  /** The name tenant preview domains must CNAME to; default edge.<base-domain>. */
  edgeHostname: string
  /** DNS servers (ip or ip:port) for verifying tenant preview domains; empty: the system's. */
  dnsServers: string[]
  /** Requests per second each API key may make, sustained (a token bucket's refill); 0 turns API rate limits off. */
  rateLimitRps: number
  /** Requests an API key may make at once after a quiet spell (the bucket's capacity). */
  rateLimitBurst: number
  /** Requests per second the edge serves per preview or app host, sustained; 0 turns edge rate limits off. */
  edgeRateLimitRps: number
  /** Requests a host may get at once at the edge. */
  edgeRateLimitBurst: number
  /** Sandbox creations running at once over all organizations (the rest wait their turn, organizations round robin). */
  sandboxCreateConcurrency: number
  /** Sandbox creations an organization may have waiting; more answer 429. */
  sandboxCreateQueue: number
  /** MIOSA_QUOTAS=off turns quota checks off (use and limits are still reported). */
  quotasEnabled: boolean
  /** Each organization's limits unless the root key sets its own (--quota-<resource> / MIOSA_QUOTA_<RESOURCE>). */
  quotaDefaults: QuotaLimits
  /** What runs runtime instances: plain Docker containers, or Docker Swarm services (sandboxes and builds stay on plain Docker). */
  runtime: 'docker' | 'swarm'
}

export interface ServerFlags {
  role?: string | undefined
  dataDir?: string | undefined
  host?: string | undefined
  port?: string | number | undefined
  edgePort?: string | number | undefined
  baseDomain?: string | undefined
  rateLimitRps?: string | number | undefined
  rateLimitBurst?: string | number | undefined
  edgeRateLimitRps?: string | number | undefined
  edgeRateLimitBurst?: string | number | undefined
  sandboxDiskMb?: string | number | undefined
  runtime?: string | undefined
  /** --quota-running-sandboxes etc.: platform default limits, by resource. */
  quotas?: Partial<Record<QuotaResource, string | number | undefined>> | undefined
}

const port = z.coerce.number().int().min(0).max(65535)
const hostname = z
  .string()
  .min(1)
  .max(253)
  .regex(/^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i, 'must be a DNS name')

const sources = {
  role: '--role / MIOSA_ROLE',
  dataDir: '--data-dir / MIOSA_DATA_DIR',
  host: '--host / MIOSA_HOST',
  port: '--port / MIOSA_PORT',
  edgePort: '--edge-port / MIOSA_EDGE_PORT',
  baseDomain: '--base-domain / MIOSA_BASE_DOMAIN',
  databaseUrl: 'MIOSA_DATABASE_URL',
  rootKey: 'MIOSA_ROOT_KEY',
  masterKey: 'MIOSA_MASTER_KEY',
  bodyLimitBytes: 'MIOSA_BODY_LIMIT_BYTES',
  logLevel: 'MIOSA_LOG_LEVEL',
  logPretty: 'MIOSA_LOG_PRETTY',
  shutdownTimeoutMs: 'MIOSA_SHUTDOWN_TIMEOUT_MS',
  cacheDir: 'MIOSA_CACHE_DIR',
  caBundle: 'MIOSA_CA_BUNDLE',
  templateImages: 'MIOSA_TEMPLATE_IMAGES',
  debianMirror: 'MIOSA_DEBIAN_MIRROR',
  templatesDir: 'MIOSA_TEMPLATES_DIR',
  sandboxWarmPool: 'MIOSA_SANDBOX_WARM_POOL',
  sandboxWarmPoolMax: 'MIOSA_SANDBOX_WARM_POOL_MAX',
  sandboxReaperIntervalMs: 'MIOSA_SANDBOX_REAPER_INTERVAL_MS',
  sandboxDiskMb: '--sandbox-disk-mb / MIOSA_SANDBOX_DISK_MB',
  sandboxDiskIntervalMs: 'MIOSA_SANDBOX_DISK_INTERVAL_MS',
  reconcileIntervalMs: 'MIOSA_RECONCILE_INTERVAL_MS',
  instanceReconcileIntervalMs: 'MIOSA_INSTANCE_RECONCILE_INTERVAL_MS',
  sandboxSubnets: 'MIOSA_SANDBOX_SUBNETS',
  edgePublicUrl: 'MIOSA_EDGE_PUBLIC_URL',
  edgeHostname: 'MIOSA_EDGE_HOSTNAME',
  dnsServers: 'MIOSA_DNS_SERVERS',
  rateLimitRps: '--rate-limit-rps / MIOSA_RATE_LIMIT_RPS',
  rateLimitBurst: '--rate-limit-burst / MIOSA_RATE_LIMIT_BURST',
  edgeRateLimitRps: '--edge-rate-limit-rps / MIOSA_EDGE_RATE_LIMIT_RPS',
  edgeRateLimitBurst: '--edge-rate-limit-burst / MIOSA_EDGE_RATE_LIMIT_BURST',
  sandboxCreateConcurrency: 'MIOSA_SANDBOX_CREATE_CONCURRENCY',
  sandboxCreateQueue: 'MIOSA_SANDBOX_CREATE_QUEUE',
  quotasEnabled: 'MIOSA_QUOTAS',
  quotaDefaults: '--quota-<resource> / MIOSA_QUOTA_<RESOURCE>',
  runtime: '--runtime / MIOSA_RUNTIME',
} satisfies Record<keyof Config, string>

const schema = z.object({
  dataDir: z.string().min(1),
  host: z.string().min(1),
  port,
  role: z.enum(['all', 'edge']),
  edgePort: port,
  baseDomain: hostname.transform((h) => h.toLowerCase()),
  databaseUrl: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
    .optional(),
  rootKey: z.string().optional(),
  masterKey: z
    .string()
    .refine((value) => value.split(',').every(isMasterKey), 'must be 32 bytes written as base64 or hex (64 hex digits); while a rotation is unfinished, "new,old"')
    .optional(),
  bodyLimitBytes: z.coerce.number().int().min(1024),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
  logPretty: z.boolean(),
  shutdownTimeoutMs: z.coerce.number().int().min(0),
  cacheDir: z.string().min(1),
  caBundle: z
    .string()
    .refine((path) => existsSync(path), 'no such file')
    .optional(),
  templateImages: z
    .string()
    .regex(/^\s*([a-z0-9-]+=[^\s,=]+\s*)(,\s*[a-z0-9-]+=[^\s,=]+\s*)*$/, 'must be template=image pairs separated by commas, e.g. node=node:22-bookworm')
    .optional()
    .transform((value) => parsePairs(value ?? '')),
  debianMirror: z
    .string()
    .regex(/^https?:\/\/\S+$/, 'must be an http(s) URL')
    .optional(),
  templatesDir: z
    .string()
    .refine((path) => existsSync(path), 'no such directory')
    .optional(),
  sandboxWarmPool: z.coerce.number().int().min(0).max(32),
  sandboxWarmPoolMax: z.coerce.number().int().min(0).max(64),
  sandboxReaperIntervalMs: z.coerce.number().int().min(100),
  sandboxDiskMb: z.coerce.number().int().min(0),
  sandboxDiskIntervalMs: z.coerce.number().int().min(100),
  reconcileIntervalMs: z.coerce.number().int().min(1000),
  instanceReconcileIntervalMs: z.coerce.number().int().min(100),
  sandboxSubnets: z.string().regex(/^\d{1,3}\.\d{1,3}\.0\.0\/16$/, 'must be an IPv4 /16, e.g. 10.213.0.0/16'),
  edgePublicUrl: z
    .string()
    .regex(/^https?:\/\/[^/?#]*[^/?#:]$|^https?:\/\/[^/?#]+:\d+$/, 'must be a scheme and host (and port), e.g. https://miosa.example.com, with no path')
    .transform((url) => url.replace(/\/+$/, ''))
    .optional(),
  edgeHostname: hostname.transform((h) => h.toLowerCase()),
  dnsServers: z
    .string()
    .regex(/^\s*[0-9.:[\]a-f]+(\s*,\s*[0-9.:[\]a-f]+)*\s*$/i, 'must be DNS server addresses separated by commas, e.g. 127.0.0.1:5353')
    .optional()
    .transform((value) => (value === undefined ? [] : value.split(',').map((s) => s.trim()))),
  rateLimitRps: z.coerce.number().min(0),
  rateLimitBurst: z.coerce.number().int().min(1),
  edgeRateLimitRps: z.coerce.number().min(0),
  edgeRateLimitBurst: z.coerce.number().int().min(1),
  sandboxCreateConcurrency: z.coerce.number().int().min(1).max(1000),
  sandboxCreateQueue: z.coerce.number().int().min(1),
  quotasEnabled: z.enum(['on', 'off'], 'must be on or off').transform((v) => v === 'on'),
  quotaDefaults: z.strictObject(
    Object.fromEntries(QUOTA_RESOURCES.map((r) => [r, z.coerce.number('must be a number').min(0).max(QUOTA_LIMIT_MAX)])) as Record<QuotaResource, z.ZodCoercedNumber>,
  ),
  runtime: z.enum(['docker', 'swarm'], 'must be docker or swarm'),
})

/** `running_sandboxes` → `--quota-running-sandboxes / MIOSA_QUOTA_RUNNING_SANDBOXES`. */
function quotaFlag(resource: QuotaResource): string {
  return `--quota-${resource.replaceAll('_', '-')} / MIOSA_QUOTA_${resource.toUpperCase()}`
}

/** The host's own trust store, when it has one: what containers need behind a TLS-inspecting proxy. */
const SYSTEM_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt'

export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.XDG_DATA_HOME ? join(env.XDG_DATA_HOME, 'miosa') : join(homedir(), '.local', 'share', 'miosa')
}

export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.XDG_CACHE_HOME ? join(env.XDG_CACHE_HOME, 'miosa') : join(homedir(), '.cache', 'miosa')
}

export function loadConfig(flags: ServerFlags = {}, env: NodeJS.ProcessEnv = process.env): Config {
  const raw = {
    role: flags.role ?? env.MIOSA_ROLE ?? 'all',
    dataDir: resolve(flags.dataDir ?? env.MIOSA_DATA_DIR ?? defaultDataDir(env)),
    host: flags.host ?? env.MIOSA_HOST ?? '127.0.0.1',
    port: flags.port ?? env.MIOSA_PORT ?? 8080,
    edgePort: flags.edgePort ?? env.MIOSA_EDGE_PORT ?? 8081,
    baseDomain: flags.baseDomain ?? env.MIOSA_BASE_DOMAIN ?? 'localhost',
    databaseUrl: emptyToUndefined(env.MIOSA_DATABASE_URL),
    rootKey: emptyToUndefined(env.MIOSA_ROOT_KEY),
    masterKey: emptyToUndefined(env.MIOSA_MASTER_KEY),
    bodyLimitBytes: env.MIOSA_BODY_LIMIT_BYTES ?? 1024 * 1024,
    logLevel: env.MIOSA_LOG_LEVEL ?? 'info',
    logPretty: env.MIOSA_LOG_PRETTY === undefined ? Boolean(process.stdout.isTTY) : env.MIOSA_LOG_PRETTY === '1',
    shutdownTimeoutMs: env.MIOSA_SHUTDOWN_TIMEOUT_MS ?? 10_000,
    cacheDir: resolve(emptyToUndefined(env.MIOSA_CACHE_DIR) ?? defaultCacheDir(env)),
    caBundle: emptyToUndefined(env.MIOSA_CA_BUNDLE) ?? (existsSync(SYSTEM_CA_BUNDLE) ? SYSTEM_CA_BUNDLE : undefined),
    templateImages: emptyToUndefined(env.MIOSA_TEMPLATE_IMAGES),
    debianMirror: emptyToUndefined(env.MIOSA_DEBIAN_MIRROR),
    templatesDir: emptyToUndefined(env.MIOSA_TEMPLATES_DIR),
    sandboxWarmPool: env.MIOSA_SANDBOX_WARM_POOL ?? 2,
    sandboxWarmPoolMax: env.MIOSA_SANDBOX_WARM_POOL_MAX ?? 8,
    sandboxReaperIntervalMs: env.MIOSA_SANDBOX_REAPER_INTERVAL_MS ?? 5_000,
    sandboxDiskMb: flags.sandboxDiskMb ?? env.MIOSA_SANDBOX_DISK_MB ?? 10_240,
    // Each measure walks the container's writable layer (Docker's size accounting): not every few seconds.
    sandboxDiskIntervalMs: env.MIOSA_SANDBOX_DISK_INTERVAL_MS ?? 30_000,
    reconcileIntervalMs: env.MIOSA_RECONCILE_INTERVAL_MS ?? 30_000,
    instanceReconcileIntervalMs: env.MIOSA_INSTANCE_RECONCILE_INTERVAL_MS ?? 1_000,
    sandboxSubnets: env.MIOSA_SANDBOX_SUBNETS ?? '10.213.0.0/16',
    edgePublicUrl: emptyToUndefined(env.MIOSA_EDGE_PUBLIC_URL),
    edgeHostname: emptyToUndefined(env.MIOSA_EDGE_HOSTNAME) ?? `edge.${(flags.baseDomain ?? env.MIOSA_BASE_DOMAIN ?? 'localhost').toLowerCase()}`,
    dnsServers: emptyToUndefined(env.MIOSA_DNS_SERVERS),
    // Generous: an interactive user, a CI job or an SDK loop never meets them; a runaway script does.
    rateLimitRps: flags.rateLimitRps ?? env.MIOSA_RATE_LIMIT_RPS ?? 200,
    rateLimitBurst: flags.rateLimitBurst ?? env.MIOSA_RATE_LIMIT_BURST ?? 400,
    edgeRateLimitRps: flags.edgeRateLimitRps ?? env.MIOSA_EDGE_RATE_LIMIT_RPS ?? 1000,
    edgeRateLimitBurst: flags.edgeRateLimitBurst ?? env.MIOSA_EDGE_RATE_LIMIT_BURST ?? 2000,
    // Half the CPUs: a container's start and its agent's boot are CPU-bound, and the other half is left to resumes and requests.
    sandboxCreateConcurrency: env.MIOSA_SANDBOX_CREATE_CONCURRENCY ?? Math.max(1, Math.floor(availableParallelism() / 2)),
    sandboxCreateQueue: env.MIOSA_SANDBOX_CREATE_QUEUE ?? 100,
    quotasEnabled: emptyToUndefined(env.MIOSA_QUOTAS) ?? 'on',
    quotaDefaults: Object.fromEntries(
      QUOTA_RESOURCES.map((r) => [r, flags.quotas?.[r] ?? emptyToUndefined(env[`MIOSA_QUOTA_${r.toUpperCase()}`]) ?? DEFAULT_QUOTA_LIMITS[r]]),
    ),
    runtime: flags.runtime ?? emptyToUndefined(env.MIOSA_RUNTIME) ?? 'docker',
  }
  const result = schema.safeParse(raw)
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const key = issue.path[0] as keyof Config
      const source = key === 'quotaDefaults' && issue.path[1] !== undefined ? quotaFlag(issue.path[1] as QuotaResource) : sources[key]
      return `${source ?? String(key)}: ${issue.message}`
    })
    throw new MiosaError('invalid', `invalid configuration: ${problems.join('; ')}`, { details: { problems } })
  }
  return result.data as Config
}

function parsePairs(value: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const pair of value.split(',')) {
    const [name, image] = pair.trim().split('=')
    if (name !== undefined && name !== '' && image !== undefined) out[name] = image
  }
  return out
}

function isMasterKey(text: string): boolean {
  try {
    parseMasterKey(text)
    return true
  } catch {
    return false
  }
}

function emptyToUndefined(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value
}
