import { createHash } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { API_PREFIXES } from '../../src/api/api-server.js'
import type { AnyRoute } from '../../src/api/route.js'
import { routes } from '../../src/api/routes/index.js'
import { startTestPlatform } from '../helpers/platform.js'
import { insertSandboxRecord } from '../helpers/sandbox-records.js'
import type { TestPlatform } from '../helpers/platform.js'
import { DEFAULT_RUNTIME_SETTINGS } from '../../src/schemas/deployments.js'

// Walks every registered route with organization A's key while passing organization B's
// ids, filters and external ids. Each answers 404 (403 for platform-level actions) or,
// where it touched nothing of B's, succeeds without showing any of B's fields. New
// routes are covered automatically: their params carry an id prefix and their bodies an
// example, and a route this test cannot drive fails it.

let t: TestPlatform
let attacker: { id: string; key: string }
let victim: { id: string; key: string }
/** B's resource ids by id prefix. */
const victimIds: Record<string, string> = {}
/** Values of B's fields that must never appear in an answer to A (unless A sent them). */
const victimSecrets: string[] = []
let victimSnapshot: string

async function snapshotVictim(): Promise<string> {
  const parts = await Promise.all([
    t.call('GET', `/api/v1/workspaces/${victimIds.ws}`, { key: victim.key }),
    t.call('GET', `/api/v1/projects/${victimIds.prj}`, { key: victim.key }),
    t.call('GET', `/api/v1/api-keys/${victimIds.key}`, { key: victim.key }),
    t.call('GET', '/api/v1/workspaces', { key: victim.key }),
    t.call('GET', '/api/v1/projects', { key: victim.key }),
    t.call('GET', '/api/v1/api-keys', { key: victim.key }),
    t.call('GET', `/api/v1/sandboxes/${victimIds.sbx}`, { key: victim.key }),
    t.call('GET', `/api/v1/snapshots/${victimIds.snap}`, { key: victim.key }),
    t.call('GET', `/api/v1/preview-tokens/${victimIds.tok}`, { key: victim.key }),
    t.call('GET', `/api/v1/share-tokens/${victimIds.tok}`, { key: victim.key }),
    t.call('GET', '/api/v1/preview-tokens', { key: victim.key }),
    t.call('GET', '/api/v1/share-tokens', { key: victim.key }),
    t.call('GET', `/api/v1/tenant/branding?workspace_id=${victimIds.ws}`, { key: victim.key }),
    t.call('GET', `/api/v1/tenant/preview-domain?workspace_id=${victimIds.ws}`, { key: victim.key }),
    t.call('GET', `/api/v1/deployments/${victimIds.dep}`, { key: victim.key }),
    t.call('GET', `/api/v1/deployments/${victimIds.dep}/versions?include_archived=true`, { key: victim.key }),
    t.call('GET', `/api/v1/deployments/${victimIds.dep}/route-history`, { key: victim.key }),
    t.call('GET', `/api/v1/versions/${victimIds.ver}`, { key: victim.key }),
    t.call('GET', `/api/v1/versions/${victimIds.ver}/logs`, { key: victim.key }),
    t.call('GET', '/api/v1/deployments', { key: victim.key }),
  ])
  for (const part of parts) expect(part.status).toBe(200)
  // last_used_at moves with B's own calls, expires_at with the clock; everything else must be exactly as it was.
  return JSON.stringify(parts.map((p) => p.json)).replace(/"(last_used_at|expires_at)":"[^"]*"/g, '')
}

/**
 * B's sandbox and snapshot, written straight into the store: the walk needs them to exist,
 * not to run, and a route that reached the runtime for them would answer differently
 * (the container is gone) from one that never found them (not found).
 */
async function insertVictimSandbox(workspaceId: string): Promise<void> {
  const now = new Date().toISOString()
  const attribution = { external_user_id: 'zeta-ext-user', external_project_id: null, external_workspace_id: 'zeta-ext-ws', metadata: { zeta_secret: 'zeta-meta-value' } }
  const sandbox = await insertSandboxRecord(t.platform.store, { organization_id: victim.id, workspace_id: workspaceId }, {
    id: 'sbx_zetazetazetazetazeta',
    name: 'Zeta Private Sandbox',
    slug: 'zetasbx1',
    env: { ZETA_ENV: 'zeta-env-secret' },
    runtime_ref: { driver: 'docker', id: 'zeta-container-that-does-not-exist' },
    ...attribution,
  })
  const snapshot = await t.platform.store.snapshots.insert({
    id: 'snap_zetazetazetazetazeta',
    organization_id: victim.id,
    workspace_id: workspaceId,
    sandbox_id: sandbox.id,
    name: 'Zeta Private Snapshot',
    state: 'ready',
    error: null,
    size_bytes: 1,
    template: 'node',
    runtime_ref: { driver: 'docker', id: 'miosa/snapshot:zeta-does-not-exist' },
    ...attribution,
    created_at: now,
    updated_at: now,
  })
  victimIds.sbx = sandbox.id
  victimIds.snap = snapshot.id
  const service = await t.platform.store.backgroundServices.insert({
    id: 'proc_zetazetazetazetazeta',
    organization_id: victim.id,
    sandbox_id: sandbox.id,
    cmd: ['zeta-private-server'],
    cwd: null,
    env: { ZETA_SERVICE_ENV: 'zeta-service-secret' },
    log_path: '/tmp/zeta.log',
    created_at: now,
    started_at: now,
  })
  victimIds.proc = service.id
  victimSecrets.push('zeta-private-server', 'zeta-service-secret')
  victimSecrets.push('Zeta Private Sandbox', 'zetasbx1', 'Zeta Private Snapshot', 'zeta-env-secret', 'ZETA_ENV', 'zeta-container-that-does-not-exist')

  // A preview token and a share token. They share one id (in two tables), because the walk
  // maps an id prefix (tok) to one of B's ids and must reach both kinds with it.
  const token = { id: 'tok_zetazetazetazetazeta', organization_id: victim.id, workspace_id: workspaceId, sandbox_id: sandbox.id, port: 3000, revoked_at: null, ...attribution, created_at: now }
  await t.platform.store.previewTokens.insert({ ...token, expires_at: new Date(Date.now() + 3_600_000).toISOString() })
  const shareValue = 'ms_zetazetazetazetazetazetazetazeta'
  await t.platform.store.shareTokens.insert({
    ...token,
    name: 'Zeta Private Share',
    token_hash: createHash('sha256').update(shareValue).digest('hex'),
    token_prefix: 'ms_zetazz',
    password_hash: 'scrypt$16384$8$1$emV0YXNhbHQ$emV0YWhhc2g',
    expires_at: null,
  })
  victimIds.tok = token.id
  victimSecrets.push('Zeta Private Share', shareValue, 'ms_zetazz', createHash('sha256').update(shareValue).digest('hex'), 'emV0YWhhc2g')
}

/** B's deployment with one ready version serving production, written straight into the store. */
async function insertVictimDeployment(workspaceId: string): Promise<void> {
  const now = new Date().toISOString()
  const attribution = { external_user_id: 'zeta-ext-user', external_project_id: null, external_workspace_id: 'zeta-ext-ws', metadata: { zeta_secret: 'zeta-meta-value' } }
  const store = t.platform.store
  const scope = { organization_id: victim.id }
  const dep = await store.deployments.insert({
    id: 'dep_zetazetazetazetazeta',
    organization_id: victim.id,
    workspace_id: workspaceId,
    project_id: null,
    name: 'Zeta Private App',
    slug: 'zeta-private-app',
    ...DEFAULT_RUNTIME_SETTINGS,
    spa_fallback: false,
    ...attribution,
    created_at: now,
    updated_at: now,
  })
  const sha = 'zeta0release0sha0zeta0release0sha0zeta0release0sha0zeta0release0'
  await store.releases.put({ sha256: sha, kind: 'static', size_bytes: 42, created_at: now })
  const ver = await store.versions.insertNext({
    id: 'ver_zetazetazetazetazeta',
    organization_id: victim.id,
    workspace_id: workspaceId,
    deployment_id: dep.id,
    environment: 'production',
    status: 'ready',
    error: null,
    error_details: null,
    kind: 'static',
    plan: { kind: 'static', detected: 'static-files', install: null, build: null, output_dir: '.', start: null, spa_fallback: false, reasons: ['zeta plan reason'] },
    source_sha256: 'zeta-source-sha',
    release_sha256: sha,
    release_kind: 'static',
    sandbox_id: victimIds.sbx ?? null,
    logs: 'zeta build log line\n',
    created_by: 'key_zeta',
    ...attribution,
    created_at: now,
    updated_at: now,
    finished_at: now,
  })
  await store.deploymentRoutes.repoint(scope, {
    id: 'rtc_zetazetazetazetazeta',
    organization_id: victim.id,
    deployment_id: dep.id,
    environment: 'production',
    to_version_id: ver.id,
    reason: 'publish',
    actor: 'key_zeta',
    created_at: now,
  })
  victimIds.dep = dep.id
  victimIds.ver = ver.id
  victimSecrets.push('Zeta Private App', 'zeta-private-app', sha, 'zeta-source-sha', 'zeta build log line', 'zeta plan reason', 'rtc_zetazetazetazetazeta')
}

beforeAll(async () => {
  // No reconcile pass during the walk: it would mark B's container-less sandbox as failed.
  t = await startTestPlatform({ reconcileIntervalMs: 3_600_000 })
  attacker = await t.newOrganization('Attacker Org')
  victim = await t.newOrganization('Victim Zeta Org')
  victimIds.org = victim.id
  const ws = await t.call('POST', '/api/v1/workspaces', {
    key: victim.key,
    body: { name: 'Zeta Private Workspace', external_workspace_id: 'zeta-ext-ws', external_user_id: 'zeta-ext-user', metadata: { zeta_secret: 'zeta-meta-value' } },
  })
  const prj = await t.call('POST', '/api/v1/projects', {
    key: victim.key,
    body: { workspace_id: ws.json.id, name: 'Zeta Private Project', external_project_id: 'zeta-ext-prj' },
  })
  const key = await t.call('POST', '/api/v1/api-keys', { key: victim.key, body: { name: 'zeta-key-name' } })
  victimIds.ws = ws.json.id
  victimIds.prj = prj.json.id
  victimIds.key = key.json.id
  await insertVictimSandbox(ws.json.id)
  await insertVictimDeployment(ws.json.id)
  const branding = await t.call('PUT', '/api/v1/tenant/branding', {
    key: victim.key,
    body: { workspace_id: ws.json.id, logo_url: 'https://zeta-logo.example.com/logo.svg', accent_color: '#abcdef', support_url: 'https://zeta-support.example.com' },
  })
  const domain = await t.call('POST', '/api/v1/tenant/preview-domain', { key: victim.key, body: { workspace_id: ws.json.id, domain: 'preview.zeta-private.example' } })
  expect([branding.status, domain.status]).toEqual([200, 200])
  victimSecrets.push('zeta-logo.example.com', 'zeta-support.example.com', '#abcdef', 'preview.zeta-private.example')
  victimSecrets.push(
    ...Object.values(victimIds),
    'Victim Zeta Org', 'victim-zeta-org', 'Zeta Private Workspace', 'zeta-private-workspace', 'Zeta Private Project',
    'zeta-ext-ws', 'zeta-ext-user', 'zeta-ext-prj', 'zeta-meta-value', 'zeta-key-name', key.json.prefix, key.json.key, victim.key,
  )
  // A has resources of its own, so "empty because A has nothing" cannot pass for "scoped".
  const own = await t.call('POST', '/api/v1/workspaces', { key: attacker.key, body: { name: 'Attacker Workspace' } })
  await t.call('POST', '/api/v1/projects', { key: attacker.key, body: { workspace_id: own.json.id, name: 'Attacker Project' } })
  victimSnapshot = await snapshotVictim()
})

afterAll(async () => {
  await t?.close()
})

function idPrefixOf(schema: z.ZodType): string | undefined {
  return (schema.meta() as Record<string, unknown> | undefined)?.['x-id-prefix'] as string | undefined
}

function shapeOf(schema: z.ZodType | undefined): Record<string, z.ZodType> {
  return ((schema as unknown as { shape?: Record<string, z.ZodType> } | undefined)?.shape ?? {}) as Record<string, z.ZodType>
}

/** Optional wrappers hide the id meta; unwrap to find it. */
function innerIdPrefix(schema: z.ZodType): string | undefined {
  let current: z.ZodType | undefined = schema
  for (let depth = 0; current !== undefined && depth < 5; depth++) {
    const prefix = idPrefixOf(current)
    if (prefix !== undefined) return prefix
    current = (current as unknown as { unwrap?: () => z.ZodType }).unwrap?.()
  }
  return undefined
}

/** Every string in the example that is an id gets swapped for B's id of the same kind. */
function withVictimIds(value: unknown): { value: unknown; used: string[] } {
  const used: string[] = []
  const swap = (v: unknown): unknown => {
    if (typeof v === 'string') {
      const prefix = v.slice(0, v.indexOf('_'))
      const id = victimIds[prefix]
      if (id !== undefined) {
        used.push(id)
        return id
      }
      return v
    }
    if (Array.isArray(v)) return v.map(swap)
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, swap(x)]))
    return v
  }
  return { value: swap(value), used }
}

interface Probe {
  route: AnyRoute
  url: string
  body: unknown
  /** For routes that take the body as a stream: raw bytes and their content type. */
  raw?: { body: string; contentType: string } | undefined
  /** B's ids this request names, in its path, query or body. */
  namesVictim: boolean
  sent: string[]
}

function requestOf(key: string, probe: Probe): { key: string; body?: unknown; rawBody?: string; headers?: Record<string, string> } {
  if (probe.raw !== undefined) return { key, rawBody: probe.raw.body, headers: { 'content-type': probe.raw.contentType } }
  return { key, body: probe.body }
}

function probesFor(route: AnyRoute, prefix: string): Probe[] {
  let path = route.path
  const sent: string[] = []
  for (const [name, schema] of Object.entries(shapeOf(route.params))) {
    const idPrefix = innerIdPrefix(schema)
    // A param that is no id (an environment's name) takes its schema's example.
    const example = (z.globalRegistry.get(schema) as { example?: unknown } | undefined)?.example
    if (idPrefix === undefined && typeof example === 'string') {
      path = path.replace(`:${name}`, encodeURIComponent(example))
      continue
    }
    const id = idPrefix === undefined ? undefined : victimIds[idPrefix]
    if (id === undefined) throw new Error(`${route.method} ${route.path}: no victim id for :${name} (prefix ${idPrefix}); extend this test`)
    path = path.replace(`:${name}`, id)
    sent.push(id)
  }
  const hasBody = route.method !== 'GET' && route.method !== 'DELETE'
  if (hasBody && route.body !== undefined && route.example === undefined) {
    throw new Error(`${route.method} ${route.path} has a body but no example: add one so this test can drive it`)
  }
  const stream = route.bodyStream
  const { value: body, used } = hasBody && stream === undefined ? withVictimIds(route.example ?? {}) : { value: undefined, used: [] }
  sent.push(...used)
  const exampleQuery = route.exampleQuery === undefined ? '' : `?${new URLSearchParams(route.exampleQuery).toString()}`
  const raw =
    stream === undefined ? undefined : { body: 'zeta', contentType: stream.contentTypes === '*' ? 'application/octet-stream' : (stream.contentTypes[0] as string) }
  const base: Probe = { route, url: `${prefix}${path}${exampleQuery}`, body, raw, namesVictim: sent.length > 0, sent }
  const probes = [base]
  if (route.method === 'GET' && route.query !== undefined) {
    // B's external ids and metadata as filters (on lists that take them): they must select nothing of B's.
    const join = base.url.includes('?') ? '&' : '?'
    if ('external_user_id' in shapeOf(route.query)) {
      probes.push({ ...base, url: `${base.url}${join}external_user_id=zeta-ext-user` })
      probes.push({ ...base, url: `${base.url}${join}external_workspace_id=zeta-ext-ws` })
      probes.push({ ...base, url: `${base.url}${join}metadata%5Bzeta_secret%5D=zeta-meta-value` })
    }
    // Id filters of B's resources are 404s.
    for (const [name, schema] of Object.entries(shapeOf(route.query))) {
      const idPrefix = innerIdPrefix(schema)
      const id = idPrefix === undefined ? undefined : victimIds[idPrefix]
      if (id !== undefined) probes.push({ ...base, url: `${base.url}${join}${name}=${id}`, namesVictim: true, sent: [...sent, id] })
    }
  }
  return probes
}

describe("a key of organization A never reaches organization B's resources", () => {
  it('covers every registered route', () => {
    expect(routes.length).toBeGreaterThanOrEqual(19)
    for (const route of routes) expect(() => probesFor(route, '/api/v1')).not.toThrow()
  })

  for (const prefix of API_PREFIXES) {
    for (const route of routes) {
      if (route.scope === 'public') continue
      it(`${route.method} ${prefix}${route.path}`, async () => {
        for (const probe of probesFor(route, prefix)) {
          const res = await t.call(route.method, probe.url, requestOf(attacker.key, probe))
          const where = `${route.method} ${probe.url} → ${res.status} ${res.text.slice(0, 200)}`
          if (route.scope === 'root') {
            expect(res.status, where).toBe(403)
            expect(res.json.error.code, where).toBe('forbidden')
          } else if (probe.namesVictim) {
            expect(res.status, where).toBe(404)
            expect(res.json.error.code, where).toBe('not_found')
            // Not found by the organization's scope, not by a runtime that was asked about B's sandbox.
            expect(res.json.error.message, where).toMatch(/not found/)
          } else {
            expect(res.status, where).toBeLessThan(300)
          }
          for (const secret of victimSecrets) {
            if (probe.sent.includes(secret)) continue // echoing the caller's own input back is not a leak
            expect(res.text.includes(secret), `${where} leaks ${secret}`).toBe(false)
          }
          if (res.json?.data !== undefined) {
            for (const item of res.json.data) expect(item.organization_id ?? item.id, where).not.toBe(victim.id)
          }
        }
      })
    }
  }

  it("left every one of B's resources exactly as it was, and B's key still works", async () => {
    expect(await snapshotVictim()).toBe(victimSnapshot)
  })

  it('the root key is refused on organization routes (it manages organizations only)', async () => {
    for (const route of routes.filter((r) => r.scope === 'organization')) {
      const [probe] = probesFor(route, '/api/v1')
      const res = await t.call(route.method, (probe as Probe).url, requestOf(t.rootKey, probe as Probe))
      expect(res.status, `${route.method} ${route.path}`).toBe(403)
    }
    expect(await snapshotVictim()).toBe(victimSnapshot)
  })
})
