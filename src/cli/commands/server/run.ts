import type { Command } from 'commander'
import { command } from '../../command.js'

// The platform's default limit of every resource (src/schemas/quotas.ts; listed here so this
// command loads no server code until it runs).
const QUOTA_FLAGS = ['running_sandboxes', 'sandboxes', 'vcpus', 'memory_mb', 'concurrent_builds', 'storage_gb', 'deployments', 'computers', 'docker_deploy_hosts'] as const

export function registerServer(program: Command): void {
  const cmd = command(program, 'server', 'run the platform: the API, the edge and the reconcilers, with embedded defaults')
    .option('--role <role>', 'what this process runs: all (API, edge and workers) or edge (one more edge beside an all, on the same PostgreSQL) (MIOSA_ROLE; default all)')
    .option('--data-dir <dir>', 'where the database, blobs and root key live (MIOSA_DATA_DIR; default ~/.local/share/miosa)')
    .option('--host <address>', 'address to listen on (MIOSA_HOST; default 127.0.0.1)')
    .option('--port <port>', 'API port (MIOSA_PORT; default 8080)')
    .option('--edge-port <port>', 'edge port for previews and apps (MIOSA_EDGE_PORT; default 8081)')
    .option('--base-domain <domain>', 'domain previews and apps are served under (MIOSA_BASE_DOMAIN; default localhost)')
    .option('--rate-limit-rps <n>', 'requests per second per API key, sustained (MIOSA_RATE_LIMIT_RPS; default 200; 0: off)')
    .option('--rate-limit-burst <n>', 'requests per API key at once (MIOSA_RATE_LIMIT_BURST; default 400)')
    .option('--edge-rate-limit-rps <n>', 'requests per second per preview or app host at the edge (MIOSA_EDGE_RATE_LIMIT_RPS; default 1000; 0: off)')
    .option('--edge-rate-limit-burst <n>', 'requests per host at once at the edge (MIOSA_EDGE_RATE_LIMIT_BURST; default 2000)')
    .option('--sandbox-disk-mb <n>', "disk a sandbox's files may use, measured; past it file writes are refused (MIOSA_SANDBOX_DISK_MB; default 10240; 0: off)")
    .option('--runtime <docker|swarm>', 'what runs deployments\' instances: Docker containers, or Docker Swarm services on a swarm manager (MIOSA_RUNTIME; default docker)')
    .option('--prebuild-templates', 'build every sandbox template image before serving, so no first sandbox create waits for one')
  for (const resource of QUOTA_FLAGS) {
    cmd.option(`--quota-${resource.replaceAll('_', '-')} <n>`, `default ${resource} limit of each organization (MIOSA_QUOTA_${resource.toUpperCase()})`)
  }
  cmd
    .addHelpText('after', '\nEnvironment: MIOSA_DATABASE_URL=postgres://… uses PostgreSQL instead of SQLite; MIOSA_ROOT_KEY sets the root key.')
    .action(async (opts: Record<string, string | boolean | undefined>) => {
      // The one command that runs server code; loaded lazily so every other command stays SDK-only and starts fast.
      const { serve } = await import('../../../serve.js')
      await serve(
        {
          role: str(opts.role),
          dataDir: str(opts.dataDir),
          host: str(opts.host),
          port: str(opts.port),
          edgePort: str(opts.edgePort),
          baseDomain: str(opts.baseDomain),
          rateLimitRps: str(opts.rateLimitRps),
          rateLimitBurst: str(opts.rateLimitBurst),
          edgeRateLimitRps: str(opts.edgeRateLimitRps),
          edgeRateLimitBurst: str(opts.edgeRateLimitBurst),
          sandboxDiskMb: str(opts.sandboxDiskMb),
          runtime: str(opts.runtime),
          quotas: Object.fromEntries(QUOTA_FLAGS.map((r) => [r, str(opts[`quota${r.split('_').map((w) => w[0]?.toUpperCase() + w.slice(1)).join('')}`])])),
        },
        { json: opts.json === true, prebuildTemplates: opts.prebuildTemplates === true },
      )
    })
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined
}
