import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { SandboxRecord } from '../../src/store/store.js'
import { startDnsServer } from '../helpers/dns-server.js'
import type { TestDnsServer } from '../helpers/dns-server.js'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'
import { insertSandboxRecord } from '../helpers/sandbox-records.js'

// Tenant branding and tenant preview domains through the real API. Verification asks a
// real DNS server this test starts on 127.0.0.1 (the platform's MIOSA_DNS_SERVERS).

const EDGE_HOSTNAME = 'edge.miosa-test.example'

let t: TestPlatform
let dns: TestDnsServer
let org: { id: string; key: string }
let defaultWs: string
let secondWs: string
let edgePort: number
let box: SandboxRecord

beforeAll(async () => {
  dns = await startDnsServer()
  t = await startTestPlatform({ reconcileIntervalMs: 3_600_000, edgeHostname: EDGE_HOSTNAME, dnsServers: [dns.address] })
  edgePort = Number(new URL(t.edgeUrl).port)
  org = await t.newOrganization('Tenant Org')
  defaultWs = (await t.call('POST', '/api/v1/workspaces', { key: org.key, body: { name: 'First' } })).json.id
  secondWs = (await t.call('POST', '/api/v1/workspaces', { key: org.key, body: { name: 'Second' } })).json.id
  box = await insertSandboxRecord(t.platform.store, { organization_id: org.id, workspace_id: secondWs })
})

afterAll(async () => {
  await t?.close()
  await dns?.close()
})

const unique = (label: string) => `${label}-${Math.random().toString(36).slice(2, 8)}.example.com`

describe('tenant branding', () => {
  it("PUT sets the default workspace's branding, GET returns it, and the edge's pages get it", async () => {
    const empty = await t.call('GET', '/api/v1/tenant/branding', { key: org.key })
    expect(empty.status).toBe(200)
    expect(empty.json).toEqual({ workspace_id: defaultWs, logo_url: null, accent_color: null, support_url: null, updated_at: null })
    expect(await t.platform.services.previewSites.branding({ workspaceId: defaultWs })).toBeUndefined()

    const body = { logo_url: 'https://cdn.example.com/logo.svg', accent_color: '#0F766E', support_url: 'https://example.com/help' }
    const set = await t.call('PUT', '/api/v1/tenant/branding', { key: org.key, body })
    expect(set.status, set.text).toBe(200)
    expect(set.json).toMatchObject({ workspace_id: defaultWs, ...body, updated_at: expect.any(String) })
    expect((await t.call('GET', '/v1/tenant/branding', { key: org.key })).json).toEqual(set.json)
    // A change in this process shows at once (other processes: within the cache's 30 s).
    expect(await t.platform.services.previewSites.branding({ workspaceId: defaultWs })).toEqual(body)
    expect(await t.platform.services.previewSites.branding({ workspaceId: secondWs })).toBeUndefined()

    // PUT replaces: support_url left out is cleared.
    const replaced = await t.call('PUT', '/api/v1/tenant/branding', { key: org.key, body: { logo_url: body.logo_url, accent_color: '#abc' } })
    expect(replaced.json).toMatchObject({ accent_color: '#abc', support_url: null })
    expect(await t.platform.services.previewSites.branding({ workspaceId: defaultWs })).toEqual({ logo_url: body.logo_url, accent_color: '#abc', support_url: null })
  })

  it('branding is per workspace', async () => {
    const body = { workspace_id: secondWs, logo_url: 'https://second.example.com/l.png', accent_color: '#123456' }
    expect((await t.call('PUT', '/api/v1/tenant/branding', { key: org.key, body })).status).toBe(200)
    const second = await t.call('GET', `/api/v1/tenant/branding?workspace_id=${secondWs}`, { key: org.key })
    expect(second.json).toMatchObject({ workspace_id: secondWs, logo_url: body.logo_url, accent_color: '#123456' })
    expect((await t.call('GET', '/api/v1/tenant/branding', { key: org.key })).json.logo_url).not.toBe(body.logo_url)
  })

  const hostile: [string, Record<string, unknown>, string][] = [
    ['an http logo', { logo_url: 'http://cdn.example.com/logo.svg', accent_color: '#fff' }, 'logo_url'],
    ['a javascript: logo', { logo_url: 'javascript:alert(1)', accent_color: '#fff' }, 'logo_url'],
    ['markup in the logo URL', { logo_url: 'https://x.example.com/"><script>alert(1)</script>', accent_color: '#fff' }, 'logo_url'],
    ['a logo URL with credentials', { logo_url: 'https://user:pw@x.example.com/l.png', accent_color: '#fff' }, 'logo_url'],
    ['a colour name', { logo_url: 'https://x.example.com/l.png', accent_color: 'red' }, 'accent_color'],
    ['a colour with CSS after it', { logo_url: 'https://x.example.com/l.png', accent_color: '#fff; background:url(x)' }, 'accent_color'],
    ['a four-digit colour', { logo_url: 'https://x.example.com/l.png', accent_color: '#ffff' }, 'accent_color'],
    ['an http support link', { logo_url: 'https://x.example.com/l.png', accent_color: '#fff', support_url: 'http://x.example.com' }, 'support_url'],
    ['a missing colour', { logo_url: 'https://x.example.com/l.png' }, 'accent_color'],
  ]
  for (const [what, body, field] of hostile) {
    it(`${what} → 400 naming ${field}, nothing written`, async () => {
      const before = await t.call('GET', '/api/v1/tenant/branding', { key: org.key })
      const res = await t.call('PUT', '/api/v1/tenant/branding', { key: org.key, body })
      expect(res.status, res.text).toBe(400)
      expect(res.json.error.message).toContain(`${field}:`)
      expect((await t.call('GET', '/api/v1/tenant/branding', { key: org.key })).json).toEqual(before.json)
    })
  }

  it("another organization's workspace is a 404", async () => {
    const stranger = await t.newOrganization('Stranger')
    const body = { workspace_id: defaultWs, logo_url: 'https://evil.example.com/l.png', accent_color: '#000' }
    expect((await t.call('PUT', '/api/v1/tenant/branding', { key: stranger.key, body })).status).toBe(404)
    expect((await t.call('GET', `/api/v1/tenant/branding?workspace_id=${defaultWs}`, { key: stranger.key })).status).toBe(404)
    // With no workspace of its own, a read has nothing to show.
    expect((await t.call('GET', '/api/v1/tenant/branding', { key: stranger.key })).status).toBe(404)
  })
})

describe('tenant preview domain', () => {
  it('registers a domain unverified, with the CNAME to add; verification against DNS; previews move to it', async () => {
    const domain = unique('preview')
    const none = await t.call('GET', `/api/v1/tenant/preview-domain?workspace_id=${secondWs}`, { key: org.key })
    expect(none.json).toMatchObject({ workspace_id: secondWs, domain: null, verified: false, verified_at: null, cname_target: EDGE_HOSTNAME })

    const set = await t.call('POST', '/api/v1/tenant/preview-domain', { key: org.key, body: { workspace_id: secondWs, domain: `${domain.toUpperCase()}.` } })
    expect(set.status, set.text).toBe(200)
    expect(set.json).toMatchObject({ workspace_id: secondWs, domain, verified: false, verified_at: null, cname_target: EDGE_HOSTNAME })
    expect(set.json.instructions).toContain(`*.${domain} CNAME ${EDGE_HOSTNAME}`)
    // Not verified: the edge does not serve it, and URLs stay on the platform's hostnames.
    expect(await t.platform.services.previewSites.resolve({ slug: box.slug, port: 3000, tenantDomain: domain })).toBeUndefined()
    expect((await t.call('GET', `/api/v1/sandboxes/${box.id}`, { key: org.key })).json.previews).toEqual({
      '3000': `http://3000-${box.slug}.sandbox.localhost:${edgePort}`,
    })

    // No record at all.
    const missing = await t.call('POST', '/api/v1/tenant/preview-domain/verify', { key: org.key, body: { workspace_id: secondWs } })
    expect(missing.status, missing.text).toBe(409)
    expect(missing.json.error.message).toContain(`${domain} → no CNAME`)
    expect(dns.queries).toContain(domain)

    // A CNAME to somewhere else: the message names what was found.
    dns.cname(domain, 'somewhere-else.example.net')
    const wrong = await t.call('POST', '/api/v1/tenant/preview-domain/verify', { key: org.key, body: { workspace_id: secondWs } })
    expect(wrong.status).toBe(409)
    expect(wrong.json.error.message).toContain('somewhere-else.example.net')
    expect(wrong.json.error.message).toContain(EDGE_HOSTNAME)
    expect((await t.call('GET', `/api/v1/tenant/preview-domain?workspace_id=${secondWs}`, { key: org.key })).json.verified).toBe(false)

    // A wildcard CNAME to the edge (any case, trailing dot or not) verifies it.
    dns.cname(`*.${domain}`, `${EDGE_HOSTNAME.toUpperCase()}.`)
    const ok = await t.call('POST', '/v1/tenant/preview-domain/verify', { key: org.key, body: { workspace_id: secondWs } })
    expect(ok.status, ok.text).toBe(200)
    expect(ok.json).toMatchObject({ domain, verified: true, verified_at: expect.any(String) })
    expect(dns.queries.some((q) => q.startsWith('probe-') && q.endsWith(`.${domain}`))).toBe(true)

    // Previews of the workspace's sandboxes are now at the tenant domain, and the edge serves them there.
    const tenantUrl = `http://3000-${box.slug}.${domain}:${edgePort}`
    expect((await t.call('GET', `/api/v1/sandboxes/${box.id}`, { key: org.key })).json.previews).toEqual({ '3000': tenantUrl })
    expect((await t.call('GET', `/api/v1/sandboxes/${box.id}/preview-url?port=5173`, { key: org.key })).json.url).toBe(
      `http://5173-${box.slug}.${domain}:${edgePort}`,
    )
    const token = await t.call('POST', '/api/v1/preview-tokens', { key: org.key, body: { sandbox_id: box.id, ttl_seconds: 60 } })
    expect(token.json.url).toBe(`${tenantUrl}/?token=${token.json.token}`)
    expect(await t.platform.services.previewSites.resolve({ slug: box.slug, port: undefined, tenantDomain: domain })).toMatchObject({
      sandboxId: box.id,
      port: 3000,
      workspaceId: secondWs,
    })
    // …and still at the platform's own hostnames.
    expect(await t.platform.services.previewSites.resolve({ slug: box.slug, port: 3000 })).toMatchObject({ sandboxId: box.id })

    // A sandbox of another workspace is not served under this tenant's domain.
    const elsewhere = await insertSandboxRecord(t.platform.store, { organization_id: org.id, workspace_id: defaultWs })
    expect(await t.platform.services.previewSites.resolve({ slug: elsewhere.slug, port: 3000, tenantDomain: domain })).toBeUndefined()

    // Registering the same domain again keeps it verified; deleting it moves previews back.
    const same = await t.call('POST', '/api/v1/tenant/preview-domain', { key: org.key, body: { workspace_id: secondWs, domain } })
    expect(same.json.verified).toBe(true)
    const removed = await t.call('DELETE', `/api/v1/tenant/preview-domain?workspace_id=${secondWs}`, { key: org.key })
    expect(removed.status).toBe(200)
    expect(removed.json).toMatchObject({ domain: null, verified: false })
    expect(await t.platform.services.previewSites.resolve({ slug: box.slug, port: 3000, tenantDomain: domain })).toBeUndefined()
    expect((await t.call('GET', `/api/v1/sandboxes/${box.id}`, { key: org.key })).json.previews['3000']).toContain('.sandbox.localhost:')
  })

  it("the domain's own CNAME verifies it too", async () => {
    const domain = unique('apex')
    dns.cname(domain, EDGE_HOSTNAME)
    expect((await t.call('POST', '/api/v1/tenant/preview-domain', { key: org.key, body: { domain } })).json.workspace_id).toBe(defaultWs)
    const ok = await t.call('POST', '/api/v1/tenant/preview-domain/verify', { key: org.key, body: {} })
    expect(ok.status, ok.text).toBe(200)
    expect(ok.json.verified).toBe(true)
    // A new domain replaces it, unverified.
    const next = unique('next')
    const replaced = await t.call('POST', '/api/v1/tenant/preview-domain', { key: org.key, body: { domain: next } })
    expect(replaced.json).toMatchObject({ domain: next, verified: false, verified_at: null })
    expect((await t.call('DELETE', '/api/v1/tenant/preview-domain', { key: org.key })).json.domain).toBeNull()
  })

  it('one workspace per domain: a domain taken by another workspace, of any organization, is a 409', async () => {
    const domain = unique('taken')
    expect((await t.call('POST', '/api/v1/tenant/preview-domain', { key: org.key, body: { workspace_id: defaultWs, domain } })).status).toBe(200)
    const mine = await t.call('POST', '/api/v1/tenant/preview-domain', { key: org.key, body: { workspace_id: secondWs, domain } })
    expect(mine.status).toBe(409)
    expect(mine.json.error.details.field).toBe('domain')
    const stranger = await t.newOrganization('Domain Squatter')
    const theirs = await t.call('POST', '/api/v1/tenant/preview-domain', { key: stranger.key, body: { domain } })
    expect(theirs.status).toBe(409)
    expect(theirs.text).not.toContain(defaultWs)
    expect(theirs.text).not.toContain(org.id)
    await t.call('DELETE', `/api/v1/tenant/preview-domain?workspace_id=${defaultWs}`, { key: org.key })
  })

  it("refuses names that are not DNS names, or are under the platform's own domain, naming domain", async () => {
    for (const domain of ['localhost', 'a.sandbox.localhost', 'x.localhost', EDGE_HOSTNAME, 'no spaces.example.com', 'single', '*.wild.example.com', '-bad.example.com', 'https://x.example.com']) {
      const res = await t.call('POST', '/api/v1/tenant/preview-domain', { key: org.key, body: { domain } })
      expect(res.status, `${domain}: ${res.text}`).toBe(400)
      expect(res.json.error.message).toMatch(/domain/)
    }
  })

  it('verify without a registered domain is a 409; DNS that cannot answer is a 503', async () => {
    const ws = (await t.call('POST', '/api/v1/workspaces', { key: org.key, body: { name: 'Bare' } })).json.id
    const res = await t.call('POST', '/api/v1/tenant/preview-domain/verify', { key: org.key, body: { workspace_id: ws } })
    expect(res.status).toBe(409)
    expect(res.json.error.message).toMatch(/no preview domain/)

    // A resolver that never answers (nothing listens there): unavailable, not "not verified".
    const { dnsCnameLookup, TenantSettingsService } = await import('../../src/core/tenant-settings.js')
    const silent = new TenantSettingsService({
      store: t.platform.store,
      workspaces: t.platform.services.workspaces,
      baseDomain: 'localhost',
      edgeHostname: EDGE_HOSTNAME,
      lookupCname: dnsCnameLookup(['127.0.0.1:9'], { timeoutMs: 200 }),
    })
    await silent.setPreviewDomain(org.id, { workspace_id: ws, domain: unique('silent') })
    const error = await silent.verifyPreviewDomain(org.id, { workspace_id: ws }).catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'unavailable' })
  })

  it('deleting a workspace takes its tenant settings with it', async () => {
    const ws = (await t.call('POST', '/api/v1/workspaces', { key: org.key, body: { name: 'Short-lived' } })).json.id
    const domain = unique('freed')
    await t.call('POST', '/api/v1/tenant/preview-domain', { key: org.key, body: { workspace_id: ws, domain } })
    await t.call('PUT', '/api/v1/tenant/branding', { key: org.key, body: { workspace_id: ws, logo_url: 'https://x.example.com/l.png', accent_color: '#111' } })
    expect((await t.call('DELETE', `/api/v1/workspaces/${ws}`, { key: org.key })).status).toBe(200)
    // The domain is free again.
    expect((await t.call('POST', '/api/v1/tenant/preview-domain', { key: org.key, body: { workspace_id: secondWs, domain } })).status).toBe(200)
    await t.call('DELETE', `/api/v1/tenant/preview-domain?workspace_id=${secondWs}`, { key: org.key })
  })
})
