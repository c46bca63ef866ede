import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import type { Logger } from 'pino'
import { loadConfig } from '../../src/config.js'
import type { Config } from '../../src/config.js'
import { createPlatform } from '../../src/platform.js'
import type { Platform } from '../../src/platform.js'
import { removePlatformResources } from './docker-cleanup.js'

// A real platform in-process: real store (SQLite in a temp dir, or PostgreSQL), real
// Fastify, listening on free ports. Tests reach the API with inject() or over HTTP.

export interface TestPlatform {
  platform: Platform
  rootKey: string
  apiUrl: string
  edgeUrl: string
  dataDir: string
  /** A request through Fastify's inject (no socket), with the given key. */
  call(method: string, path: string, opts?: { key?: string | undefined; body?: unknown; rawBody?: string; headers?: Record<string, string> }): Promise<{ status: number; json: any; text: string }>
  /** A new organization and one of its keys. */
  newOrganization(name?: string): Promise<{ id: string; key: string }>
  /** This platform's id: every container, network and snapshot image it makes carries it as a label. */
  platformId: string
  /** Stops the platform; unless `keep`, also removes every container, network and image it made and its data dir. */
  close(opts?: { keep?: boolean }): Promise<void>
}

export async function startTestPlatform(overrides: Partial<Config> = {}, opts: { logger?: Logger } = {}): Promise<TestPlatform> {
  // A given dataDir restarts a platform on the state an earlier one left (see close({ keep: true })).
  const dataDir = overrides.dataDir ?? (await mkdtemp(join(tmpdir(), 'miosa-test-')))
  // No warm pool unless a test asks for one: spare containers would only compete for two cores.
  // No request rate limits either: benches drive one key and one host far past any default.
  const config: Config = {
    ...loadConfig({ dataDir, port: 0, edgePort: 0 }, { MIOSA_CACHE_DIR: process.env.MIOSA_CACHE_DIR }),
    logLevel: 'silent',
    logPretty: false,
    sandboxWarmPool: 0,
    rateLimitRps: 0,
    edgeRateLimitRps: 0,
    ...overrides,
  }
  const platform = createPlatform(config, { logger: opts.logger ?? pino({ level: 'silent' }) })
  const started = await platform.start()
  const rootKey = config.rootKey ?? (await readFile(join(dataDir, 'root-key'), 'utf8')).trim()
  const platformId = (await platform.store.settings.get('platform_id')) as string

  const call: TestPlatform['call'] = async (method, path, opts = {}) => {
    const headers: Record<string, string> = { ...opts.headers }
    if (opts.key !== undefined) headers.authorization = `Bearer ${opts.key}`
    let payload: string | undefined = opts.rawBody
    if (opts.body !== undefined) {
      payload = JSON.stringify(opts.body)
      headers['content-type'] ??= 'application/json'
    } else if (payload !== undefined) {
      headers['content-type'] ??= 'application/json'
    }
    const res = await platform.api.inject({ method: method as 'GET', url: path, headers, payload })
    let json: unknown
    try {
      json = JSON.parse(res.body)
    } catch {
      json = undefined
    }
    return { status: res.statusCode, json, text: res.body }
  }

  let orgCount = 0
  return {
    platform,
    rootKey,
    apiUrl: started.apiUrl,
    edgeUrl: started.edgeUrl,
    dataDir,
    platformId,
    call,
    async newOrganization(name = `Org ${++orgCount}`) {
      const org = await call('POST', '/api/v1/organizations', { key: rootKey, body: { name } })
      if (org.status !== 201) throw new Error(`creating organization failed: ${org.text}`)
      const key = await call('POST', `/api/v1/organizations/${org.json.id}/api-keys`, { key: rootKey, body: { name: 'test' } })
      if (key.status !== 201) throw new Error(`minting key failed: ${key.text}`)
      return { id: org.json.id as string, key: key.json.key as string }
    },
    async close(opts = {}) {
      await platform.stop()
      if (opts.keep === true) return
      await removePlatformResources(platformId, platform.runtime)
      await rm(dataDir, { recursive: true, force: true })
    },
  }
}
