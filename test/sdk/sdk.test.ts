import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MiosaApiError, MiosaClient, MiosaError } from '../../src/sdk/index.js'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'
import { insertSandboxRecord } from '../helpers/sandbox-records.js'

// The SDK against a real listening server: real fetch, real sockets, real store.

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

let tp: TestPlatform
let root: MiosaClient

/** A unique tag, so filters in one test never match another test's items. */
const tag = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`

/** The error a promise rejects with; fails the test if it resolves. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new Error('expected the call to fail, but it succeeded')
}

/** A fresh organization and a client holding one of its keys. */
async function orgClient(name = tag('org')): Promise<{ orgId: string; key: string; client: MiosaClient }> {
  const org = await root.organizations.create({ name })
  const created = await root.organizations.createApiKey(org.id, { name: 'sdk-test' })
  return { orgId: org.id, key: created.key, client: new MiosaClient({ apiUrl: tp.apiUrl, apiKey: created.key }) }
}

beforeAll(async () => {
  tp = await startTestPlatform()
  root = new MiosaClient({ apiUrl: tp.apiUrl, apiKey: tp.rootKey })
})

afterAll(async () => {
  await tp?.close()
})

describe('root key: organizations and their keys', () => {
  it('creates an organization and mints a key that is shown once', async () => {
    const org = await root.organizations.create({
      name: 'Clinic IQ',
      slug: tag('clinic'),
      external_user_id: 'acct_42',
      metadata: { plan: 'pro' },
    })
    expect(org.id).toMatch(/^org_/)
    expect(org.name).toBe('Clinic IQ')
    expect(org.external_user_id).toBe('acct_42')
    expect(org.metadata).toEqual({ plan: 'pro' })
    expect(await root.organizations.get(org.id)).toEqual(org)
    const listed = await root.organizations.list({ external_user_id: 'acct_42' })
    expect(listed.data.map((o) => o.id)).toContain(org.id)

    const created = await root.organizations.createApiKey(org.id, { name: 'backend' })
    expect(created.key).toMatch(/^msk_/)
    expect(created.key.length).toBeGreaterThan(20)
    expect(created.organization_id).toBe(org.id)
    expect(created.name).toBe('backend')
    expect(created.key.startsWith(created.prefix)).toBe(true)
    expect(created).not.toHaveProperty('hash')

    // The key works, and from now on it is never shown again.
    const client = new MiosaClient({ apiUrl: tp.apiUrl, apiKey: created.key })
    const who = await client.whoami()
    expect(who.kind).toBe('organization')
    expect(who.organization?.id).toBe(org.id)
    expect(who.api_key_id).toBe(created.id)

    const got = await client.apiKeys.get(created.id)
    expect(got.id).toBe(created.id)
    expect(got).not.toHaveProperty('key')
    expect(got).not.toHaveProperty('hash')
    const page = await client.apiKeys.list()
    const item = page.data.find((k) => k.id === created.id)
    expect(item).toBeDefined()
    expect(item).not.toHaveProperty('key')
    expect(item).not.toHaveProperty('hash')
    expect(JSON.stringify(page)).not.toContain(created.key)
    expect(JSON.stringify(got)).not.toContain(created.key)
  })

  it('an organization key mints, lists and revokes its own keys', async () => {
    const { client, orgId } = await orgClient()
    const second = await client.apiKeys.create({ name: 'ci' })
    expect(second.key).toMatch(/^msk_/)
    expect(second.organization_id).toBe(orgId)
    const ids = (await client.apiKeys.list()).data.map((k) => k.id)
    expect(ids).toContain(second.id)
    const revoked = await client.apiKeys.revoke(second.id)
    expect(revoked.id).toBe(second.id)
    expect(revoked.revoked_at).not.toBeNull()
    expect(revoked).not.toHaveProperty('key')
    expect((await client.apiKeys.get(second.id)).revoked_at).toBe(revoked.revoked_at)
  })
})

describe('organization key: workspaces and projects', () => {
  let client: MiosaClient
  let orgId: string

  beforeAll(async () => {
    ;({ client, orgId } = await orgClient())
  })

  it('creates, lists, gets, updates and deletes workspaces', async () => {
    const slug = tag('acme')
    const ws = await client.workspaces.create({
      name: 'Acme',
      slug,
      external_workspace_id: 'client_7',
      metadata: { tier: 'gold' },
    })
    expect(ws.id).toMatch(/^ws_/)
    expect(ws.organization_id).toBe(orgId)
    expect(ws.slug).toBe(slug)
    expect(ws.external_workspace_id).toBe('client_7')
    expect(ws.metadata).toEqual({ tier: 'gold' })

    expect(await client.workspaces.get(ws.id)).toEqual(ws)
    expect((await client.workspaces.list()).data.map((w) => w.id)).toContain(ws.id)

    const updated = await client.workspaces.update(ws.id, { name: 'Acme Dental', metadata: { tier: 'platinum' } })
    expect(updated.id).toBe(ws.id)
    expect(updated.name).toBe('Acme Dental')
    expect(updated.slug).toBe(slug) // the slug never changes: it is in URLs
    expect(updated.metadata).toEqual({ tier: 'platinum' })
    expect(updated.external_workspace_id).toBe('client_7') // untouched fields stay
    expect((await client.workspaces.get(ws.id)).name).toBe('Acme Dental')

    const cleared = await client.workspaces.update(ws.id, { external_workspace_id: null })
    expect(cleared.external_workspace_id).toBeNull()

    expect(await client.workspaces.delete(ws.id)).toEqual({ id: ws.id, deleted: true })
    expect((await client.workspaces.list()).data.map((w) => w.id)).not.toContain(ws.id)
    const error = await rejection(client.workspaces.get(ws.id))
    expect(error).toBeInstanceOf(MiosaError)
    expect((error as MiosaError).code).toBe('not_found')
  })

  it('creates, lists (filtered by workspace), gets, updates and deletes projects', async () => {
    const wsA = await client.workspaces.create({ name: tag('ws-a') })
    const wsB = await client.workspaces.create({ name: tag('ws-b') })
    const p1 = await client.projects.create({ workspace_id: wsA.id, name: 'Intake form', external_project_id: 'doc_19' })
    const p2 = await client.projects.create({ workspace_id: wsA.id, name: 'Booking' })
    const p3 = await client.projects.create({ workspace_id: wsB.id, name: 'Intake form' })
    expect(p1.id).toMatch(/^prj_/)
    expect(p1.workspace_id).toBe(wsA.id)
    expect(p1.organization_id).toBe(orgId)
    expect(p1.slug).toBe('intake-form')
    expect(p1.external_project_id).toBe('doc_19')
    expect(p3.slug).toBe('intake-form') // slugs are unique per workspace only

    const inA = (await client.projects.list({ workspace_id: wsA.id })).data.map((p) => p.id)
    expect(inA.toSorted()).toEqual([p1.id, p2.id].toSorted())
    const inB = (await client.projects.list({ workspace_id: wsB.id })).data.map((p) => p.id)
    expect(inB).toEqual([p3.id])
    const all = (await client.projects.list()).data.map((p) => p.id)
    expect(all).toEqual(expect.arrayContaining([p1.id, p2.id, p3.id]))

    expect(await client.projects.get(p1.id)).toEqual(p1)
    const renamed = await client.projects.update(p1.id, { name: 'Intake v2', metadata: { stage: 'beta' } })
    expect(renamed.name).toBe('Intake v2')
    expect(renamed.metadata).toEqual({ stage: 'beta' })
    expect(renamed.slug).toBe('intake-form')
    expect(renamed.external_project_id).toBe('doc_19')

    expect(await client.projects.delete(p2.id)).toEqual({ id: p2.id, deleted: true })
    expect((await client.projects.list({ workspace_id: wsA.id })).data.map((p) => p.id)).toEqual([p1.id])
    expect(((await rejection(client.projects.get(p2.id))) as MiosaError).code).toBe('not_found')
  })

  it('list filters by external ids and metadata return only matching items', async () => {
    const user = tag('user')
    const pro = await client.workspaces.create({
      name: 'Pro customer',
      external_user_id: user,
      external_workspace_id: tag('client'),
      metadata: { plan: 'pro', batch: user },
    })
    const free = await client.workspaces.create({
      name: 'Free customer',
      external_user_id: user,
      external_workspace_id: tag('client'),
      metadata: { plan: 'free', batch: user },
    })
    const other = await client.workspaces.create({ name: 'Someone else', metadata: { plan: 'pro' } })

    const byUser = (await client.workspaces.list({ external_user_id: user })).data.map((w) => w.id)
    expect(byUser.toSorted()).toEqual([pro.id, free.id].toSorted())

    const byWorkspaceId = await client.workspaces.list({ external_workspace_id: free.external_workspace_id ?? '' })
    expect(byWorkspaceId.data.map((w) => w.id)).toEqual([free.id])

    const byPlan = (await client.workspaces.list({ metadata: { plan: 'pro' } })).data.map((w) => w.id)
    expect(byPlan).toContain(pro.id)
    expect(byPlan).toContain(other.id)
    expect(byPlan).not.toContain(free.id)

    // Every pair must match.
    const both = await client.workspaces.list({ metadata: { plan: 'pro', batch: user } })
    expect(both.data.map((w) => w.id)).toEqual([pro.id])
    const combined = await client.workspaces.list({ external_user_id: user, metadata: { plan: 'free' } })
    expect(combined.data.map((w) => w.id)).toEqual([free.id])
    expect((await client.workspaces.list({ metadata: { plan: tag('none') } })).data).toEqual([])

    // Projects take the same filters, alongside workspace_id.
    const project = await client.projects.create({
      workspace_id: pro.id,
      name: 'Filtered',
      external_project_id: user,
      metadata: { plan: 'pro' },
    })
    await client.projects.create({ workspace_id: pro.id, name: 'Unfiltered' })
    const projects = await client.projects.list({ workspace_id: pro.id, external_project_id: user })
    expect(projects.data.map((p) => p.id)).toEqual([project.id])
    const projectsByPlan = await client.projects.list({ workspace_id: pro.id, metadata: { plan: 'pro' } })
    expect(projectsByPlan.data.map((p) => p.id)).toEqual([project.id])
  })

  it('iterate() walks every page', async () => {
    const batch = tag('batch')
    const created: string[] = []
    for (let i = 0; i < 5; i++) {
      created.push((await client.workspaces.create({ name: `Page item ${i}`, metadata: { batch } })).id)
    }
    const first = await client.workspaces.list({ limit: 2, metadata: { batch } })
    expect(first.data).toHaveLength(2)
    expect(first.next_cursor).not.toBeNull() // so iterate() really has pages to walk

    const seen: string[] = []
    const times: string[] = []
    for await (const ws of client.workspaces.iterate({ limit: 2, metadata: { batch } })) {
      seen.push(ws.id)
      times.push(ws.created_at)
    }
    expect(seen).toHaveLength(5)
    expect(new Set(seen).size).toBe(5)
    expect(seen.toSorted()).toEqual(created.toSorted())
    // Newest first (items made in the same millisecond may come in either order).
    expect(times).toEqual(times.toSorted().toReversed())
  })
})

describe('organization key: previews and their access', () => {
  it('sandboxes.update and previewUrl, previewTokens, shareTokens, tenant branding and preview domain', async () => {
    const { client, orgId } = await orgClient()
    const ws = await client.workspaces.create({ name: tag('previews') })
    // A record only (no container): what these calls touch is the control plane.
    const box = await insertSandboxRecord(tp.platform.store, { organization_id: orgId, workspace_id: ws.id })
    const edgePort = new URL(tp.edgeUrl).port

    expect((await client.sandboxes.update(box.id, { preview_public: true, name: 'shown' })).preview_public).toBe(true)
    expect(await client.sandboxes.previewUrl(box.id, { port: 5173 })).toEqual({
      url: `http://5173-${box.slug}.sandbox.localhost:${edgePort}`,
      port: 5173,
      public: true,
    })
    expect((await client.sandboxes.previewUrl(box.id)).port).toBe(3000)

    const token = await client.previewTokens.create({ sandbox_id: box.id, ttl_seconds: 300, port: 3000 })
    expect(token.token).toMatch(/^mp_/)
    expect((await client.previewTokens.list({ sandbox_id: box.id })).data.map((x) => x.id)).toEqual([token.id])
    expect(await client.previewTokens.get(token.id)).not.toHaveProperty('token')
    expect((await client.previewTokens.revoke(token.id)).revoked_at).not.toBeNull()
    const tooLong = await rejection(client.previewTokens.create({ sandbox_id: box.id, ttl_seconds: 90_000 }))
    expect(tooLong).toBeInstanceOf(MiosaApiError)
    expect((tooLong as MiosaApiError).code).toBe('invalid')
    expect((tooLong as MiosaApiError).message).toMatch(/ttl_seconds/)

    const share = await client.shareTokens.create({ sandbox_id: box.id, password: 'long enough', name: 'SDK' })
    expect(share).toMatchObject({ has_password: true, name: 'SDK' })
    const shares = await client.shareTokens.list({ sandbox_id: box.id })
    expect(shares.data.map((x) => x.id)).toEqual([share.id])
    expect(JSON.stringify(shares)).not.toContain(share.token)
    expect((await client.shareTokens.revoke(share.id)).revoked_at).not.toBeNull()

    const branding = await client.tenant.branding.set({ workspace_id: ws.id, logo_url: 'https://cdn.example.com/l.svg', accent_color: '#123' })
    expect(await client.tenant.branding.get({ workspace_id: ws.id })).toEqual(branding)
    const domain = `${tag('pv')}.example.com`
    expect((await client.tenant.previewDomain.set({ workspace_id: ws.id, domain })).domain).toBe(domain)
    expect((await client.tenant.previewDomain.get({ workspace_id: ws.id })).verified).toBe(false)
    expect((await client.tenant.previewDomain.delete({ workspace_id: ws.id })).domain).toBeNull()
    const unverified = await rejection(client.tenant.previewDomain.verify({ workspace_id: ws.id }))
    expect((unverified as MiosaApiError).status).toBe(409)
  })
})

describe('errors are rebuilt from their codes', () => {
  let client: MiosaClient
  let key: string

  beforeAll(async () => {
    ;({ client, key } = await orgClient())
  })

  it('404: a MiosaApiError (and MiosaError) with code, status and request id', async () => {
    const error = await rejection(client.workspaces.get('ws_nonexistent'))
    expect(error).toBeInstanceOf(MiosaError)
    expect(error).toBeInstanceOf(MiosaApiError)
    expect(error).toBeInstanceOf(Error)
    const e = error as MiosaApiError
    expect(e.code).toBe('not_found')
    expect(e.status).toBe(404)
    expect(e.requestId).toMatch(/^req_/)
    expect(e.message).toContain('ws_nonexistent')
    expect(e.message).toMatch(/not found/)
  })

  it('409: a duplicate explicit slug', async () => {
    const slug = tag('dup')
    await client.workspaces.create({ name: 'First', slug })
    const error = await rejection(client.workspaces.create({ name: 'Second', slug }))
    expect(error).toBeInstanceOf(MiosaApiError)
    const e = error as MiosaApiError
    expect(e.code).toBe('conflict')
    expect(e.status).toBe(409)
    expect(e.message).toContain(slug)
    expect(e.requestId).toMatch(/^req_/)
  })

  it('400: invalid input names the field', async () => {
    const badSlug = await rejection(client.workspaces.create({ name: 'Bad', slug: 'Not A Slug' }))
    expect(badSlug).toBeInstanceOf(MiosaApiError)
    expect((badSlug as MiosaApiError).code).toBe('invalid')
    expect((badSlug as MiosaApiError).status).toBe(400)
    expect((badSlug as MiosaApiError).message).toContain('slug')

    const noName = (await rejection(client.workspaces.create({ name: '' }))) as MiosaApiError
    expect(noName.code).toBe('invalid')
    expect(noName.message).toContain('name')

    const unknown = (await rejection(
      client.workspaces.create({ name: 'x', colour: 'red' } as unknown as { name: string }),
    )) as MiosaApiError
    expect(unknown.code).toBe('invalid')
    expect(unknown.message).toContain('colour')
    expect(unknown.details).toMatchObject({ location: 'body' })
  })

  it('forbidden: an organization key on a root route', async () => {
    const error = (await rejection(client.organizations.list())) as MiosaApiError
    expect(error).toBeInstanceOf(MiosaApiError)
    expect(error.code).toBe('forbidden')
    expect(error.status).toBe(403)
    expect(error.message).toMatch(/root key/)
  })

  it('a revoked key is unauthenticated at once', async () => {
    const spare = await client.apiKeys.create({ name: 'to-revoke' })
    const spareClient = new MiosaClient({ apiUrl: tp.apiUrl, apiKey: spare.key })
    expect((await spareClient.whoami()).api_key_id).toBe(spare.id)
    await client.apiKeys.revoke(spare.id)
    const error = (await rejection(spareClient.whoami())) as MiosaApiError
    expect(error).toBeInstanceOf(MiosaApiError)
    expect(error.code).toBe('unauthenticated')
    expect(error.status).toBe(401)
    expect(((await rejection(spareClient.workspaces.list())) as MiosaError).code).toBe('unauthenticated')
    // The key that revoked it still works.
    expect((await new MiosaClient({ apiUrl: tp.apiUrl, apiKey: key }).whoami()).kind).toBe('organization')
  })

  it('no key at all is unauthenticated', async () => {
    const anonymous = new MiosaClient({ apiUrl: tp.apiUrl, apiKey: '' })
    const saved = process.env.MIOSA_API_KEY
    delete process.env.MIOSA_API_KEY
    try {
      const error = (await rejection(new MiosaClient({ apiUrl: tp.apiUrl }).whoami())) as MiosaApiError
      expect(error.code).toBe('unauthenticated')
      expect(error.status).toBe(401)
    } finally {
      if (saved !== undefined) process.env.MIOSA_API_KEY = saved
    }
    expect(((await rejection(anonymous.whoami())) as MiosaError).code).toBe('unauthenticated')
  })

  it('an unreachable API is "unavailable", naming the URL', async () => {
    const apiUrl = 'http://127.0.0.1:1'
    const error = await rejection(new MiosaClient({ apiUrl, apiKey: key }).workspaces.list())
    expect(error).toBeInstanceOf(MiosaError)
    expect(error).not.toBeInstanceOf(MiosaApiError)
    expect((error as MiosaError).code).toBe('unavailable')
    expect((error as MiosaError).message).toContain(apiUrl)

    // A port nothing listens on: connection refused.
    const closed = `http://127.0.0.1:${await closedPort()}`
    const refused = (await rejection(new MiosaClient({ apiUrl: closed, apiKey: key }).whoami())) as MiosaError
    expect(refused).toBeInstanceOf(MiosaError)
    expect(refused.code).toBe('unavailable')
    expect(refused.message).toContain(closed)
    expect(refused.message).toMatch(/ECONNREFUSED/)
  })
})

describe('defaults', () => {
  it('reads MIOSA_API_URL and MIOSA_API_KEY when no options are given', async () => {
    const { key, orgId } = await orgClient()
    const saved = { url: process.env.MIOSA_API_URL, key: process.env.MIOSA_API_KEY }
    process.env.MIOSA_API_URL = `${tp.apiUrl}/`
    process.env.MIOSA_API_KEY = key
    try {
      const client = new MiosaClient()
      expect(client.apiUrl).toBe(tp.apiUrl) // trailing slash dropped
      const who = await client.whoami()
      expect(who.kind).toBe('organization')
      expect(who.organization?.id).toBe(orgId)

      // Options win over the environment.
      const rootClient = new MiosaClient({ apiKey: tp.rootKey })
      expect((await rootClient.whoami()).kind).toBe('root')
      const elsewhere = new MiosaClient({ apiUrl: 'http://127.0.0.1:1' })
      expect(elsewhere.apiUrl).toBe('http://127.0.0.1:1')
    } finally {
      restoreEnv('MIOSA_API_URL', saved.url)
      restoreEnv('MIOSA_API_KEY', saved.key)
    }
  })

  it('falls back to http://127.0.0.1:8080 without MIOSA_API_URL', () => {
    const saved = process.env.MIOSA_API_URL
    delete process.env.MIOSA_API_URL
    try {
      expect(new MiosaClient().apiUrl).toBe('http://127.0.0.1:8080')
    } finally {
      restoreEnv('MIOSA_API_URL', saved)
    }
  })

  it('health answers without a key', async () => {
    expect(await new MiosaClient({ apiUrl: tp.apiUrl, apiKey: '' }).health()).toEqual({ status: 'ok' })
  })
})

describe('browser safety of the built SDK', () => {
  const distSdk = join(ROOT, 'dist', 'sdk')
  const ALLOWED_OUTSIDE = new Set([join(ROOT, 'dist', 'core', 'errors.js')])

  it('the import parser finds every form of import', () => {
    const sample = [
      "import { a } from 'node:fs'",
      'import * as b from "./b.js"',
      "import c, { d } from '../c.js'",
      "import 'side-effect'",
      "export { e } from './e.js'",
      "export * from '../f.js'",
      "const g = await import('node:path')",
      'import {\n  h,\n  i,\n} from "./multi.js"',
    ].join('\n')
    expect(importsOf(sample)).toEqual([
      'node:fs',
      './b.js',
      '../c.js',
      'side-effect',
      './e.js',
      '../f.js',
      'node:path',
      './multi.js',
    ])
  })

  it('every dist/sdk file imports only dist/sdk and ../core/errors.js, never node:', async () => {
    expect(existsSync(distSdk), 'dist/sdk is missing: run `npm run build` first').toBe(true)
    const sources = (await readdir(join(ROOT, 'src', 'sdk'))).filter((f) => f.endsWith('.ts'))
    const built = (await readdir(distSdk)).filter((f) => f.endsWith('.js'))
    // Every source file was built (a stale dist would hide a new file).
    expect(built.toSorted()).toEqual(sources.map((f) => f.replace(/\.ts$/, '.js')).toSorted())

    const seen: string[] = []
    const offending: string[] = []
    for (const file of built) {
      const path = join(distSdk, file)
      for (const spec of importsOf(await readFile(path, 'utf8'))) {
        seen.push(spec)
        const target = spec.startsWith('.') ? resolve(dirname(path), spec) : undefined
        const inside = target !== undefined && !relative(distSdk, target).startsWith('..')
        const allowed = !spec.startsWith('node:') && (inside || (target !== undefined && ALLOWED_OUTSIDE.has(target)))
        if (!allowed) offending.push(`${file}: ${spec}`)
      }
    }
    expect(offending).toEqual([])
    expect(seen).toContain('../core/errors.js') // the parser did see the imports
    expect(seen).toContain('./transport.js')

    // What the SDK pulls in from outside imports nothing itself.
    for (const outside of ALLOWED_OUTSIDE) expect(importsOf(await readFile(outside, 'utf8'))).toEqual([])
  })
})

/** Module specifiers of every static import, export-from, side-effect import and dynamic import(). */
function importsOf(source: string): string[] {
  const pattern =
    /(?:^|[;\n])\s*(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g
  const specs: string[] = []
  for (const match of source.matchAll(pattern)) specs.push((match[1] ?? match[2]) as string)
  return specs
}

function restoreEnv(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name]
  else process.env[name] = value
}

/** A port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
  const { port } = server.address() as AddressInfo
  await new Promise<void>((done) => server.close(() => done()))
  return port
}
