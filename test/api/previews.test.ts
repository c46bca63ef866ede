import { createHash } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PreviewAccess } from '../../src/core/preview-access.js'
import type { AccessGrant, AccessRefusal } from '../../src/core/preview-access.js'
import { PreviewSigner } from '../../src/core/preview-signing.js'
import type { PreviewSite } from '../../src/core/preview-sites.js'
import type { SandboxRecord } from '../../src/store/store.js'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'
import { insertSandboxRecord } from '../helpers/sandbox-records.js'

// Preview tokens, share tokens, public previews and preview URLs through the real API,
// and the edge's access decisions (PreviewAccess, PreviewSites) on the values it minted.
// Sandboxes are records in the store: nothing here needs a container.

let t: TestPlatform
let org: { id: string; key: string }
let workspaceId: string
let edgePort: number
let box: SandboxRecord
let other: SandboxRecord

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

beforeAll(async () => {
  // No reconcile pass: it would mark the container-less sandboxes as failed.
  t = await startTestPlatform({ reconcileIntervalMs: 3_600_000 })
  edgePort = Number(new URL(t.edgeUrl).port)
  org = await t.newOrganization('Preview Org')
  const ws = await t.call('POST', '/api/v1/workspaces', { key: org.key, body: { name: 'Previews' } })
  workspaceId = ws.json.id
  box = await insertSandboxRecord(t.platform.store, { organization_id: org.id, workspace_id: workspaceId })
  other = await insertSandboxRecord(t.platform.store, { organization_id: org.id, workspace_id: workspaceId })
})

afterAll(async () => {
  await t?.close()
})

const services = () => t.platform.services

async function site(of: SandboxRecord, port?: number): Promise<PreviewSite> {
  const resolved = await services().previewSites.resolve({ slug: of.slug, port })
  if (resolved === undefined) throw new Error(`no site for ${of.slug}`)
  return resolved
}

function granted(answer: AccessGrant | AccessRefusal): AccessGrant {
  expect(answer, JSON.stringify(answer)).toMatchObject({ ok: true })
  return answer as AccessGrant
}

function refused(answer: AccessGrant | AccessRefusal, status: number): AccessRefusal {
  expect(answer, JSON.stringify(answer)).toMatchObject({ ok: false, status })
  expect((answer as AccessRefusal).message.length).toBeGreaterThan(10)
  return answer as AccessRefusal
}

async function mintPreviewToken(body: Record<string, unknown>) {
  const res = await t.call('POST', '/api/v1/preview-tokens', { key: org.key, body })
  expect(res.status, res.text).toBe(201)
  return res.json
}

async function createShare(body: Record<string, unknown>) {
  const res = await t.call('POST', '/api/v1/share-tokens', { key: org.key, body })
  expect(res.status, res.text).toBe(201)
  return res.json
}

describe('preview URLs', () => {
  it("a sandbox answers its template's default port in previews, and preview_public false", async () => {
    const res = await t.call('GET', `/api/v1/sandboxes/${box.id}`, { key: org.key })
    expect(res.status).toBe(200)
    expect(res.json.preview_public).toBe(false)
    expect(res.json.previews).toEqual({ '3000': `http://3000-${box.slug}.sandbox.localhost:${edgePort}` })
    const listed = await t.call('GET', `/api/v1/sandboxes?workspace_id=${workspaceId}`, { key: org.key })
    expect(listed.json.data.find((s: { id: string }) => s.id === box.id).previews).toEqual(res.json.previews)
  })

  it('GET /sandboxes/:id/preview-url answers any port, the default one without ?port', async () => {
    const custom = await t.call('GET', `/api/v1/sandboxes/${box.id}/preview-url?port=5173`, { key: org.key })
    expect(custom.status).toBe(200)
    expect(custom.json).toEqual({ url: `http://5173-${box.slug}.sandbox.localhost:${edgePort}`, port: 5173, public: false })
    const byDefault = await t.call('GET', `/v1/sandboxes/${box.id}/preview-url`, { key: org.key })
    expect(byDefault.json).toMatchObject({ port: 3000, url: `http://3000-${box.slug}.sandbox.localhost:${edgePort}` })
    const bad = await t.call('GET', `/api/v1/sandboxes/${box.id}/preview-url?port=70000`, { key: org.key })
    expect(bad.status).toBe(400)
    expect(bad.json.error.message).toMatch(/port/)
  })

  it('a template without a default port has no previews, and preview-url asks for a port', async () => {
    const bare = await insertSandboxRecord(t.platform.store, { organization_id: org.id, workspace_id: workspaceId }, { template: 'miosa-sandbox' })
    const got = await t.call('GET', `/api/v1/sandboxes/${bare.id}`, { key: org.key })
    expect(got.json.previews).toEqual({})
    const res = await t.call('GET', `/api/v1/sandboxes/${bare.id}/preview-url`, { key: org.key })
    expect(res.status).toBe(400)
    expect(res.json.error.details.field).toBe('port')
    expect((await t.call('GET', `/api/v1/sandboxes/${bare.id}/preview-url?port=8080`, { key: org.key })).status).toBe(200)
  })

  it('a destroyed sandbox has no previews and no preview URL', async () => {
    const gone = await insertSandboxRecord(
      t.platform.store,
      { organization_id: org.id, workspace_id: workspaceId },
      { state: 'destroyed', runtime_ref: null, destroyed_at: new Date().toISOString() },
    )
    expect((await t.call('GET', `/api/v1/sandboxes/${gone.id}`, { key: org.key })).json.previews).toEqual({})
    expect((await t.call('GET', `/api/v1/sandboxes/${gone.id}/preview-url?port=3000`, { key: org.key })).status).toBe(409)
    expect(await services().previewSites.resolve({ slug: gone.slug, port: 3000 })).toBeUndefined()
    expect((await t.call('POST', '/api/v1/preview-tokens', { key: org.key, body: { sandbox_id: gone.id, ttl_seconds: 60 } })).status).toBe(409)
  })
})

describe('PATCH /sandboxes/:id', () => {
  it('makes previews public and private again; the edge sees it', async () => {
    const sandbox = await insertSandboxRecord(t.platform.store, { organization_id: org.id, workspace_id: workspaceId })
    expect((await site(sandbox)).public).toBe(false)
    const made = await t.call('PATCH', `/api/v1/sandboxes/${sandbox.id}`, { key: org.key, body: { preview_public: true } })
    expect(made.status, made.text).toBe(200)
    expect(made.json.preview_public).toBe(true)
    expect(made.json.name).toBe(sandbox.name)
    expect(await site(sandbox)).toEqual({ sandboxId: sandbox.id, organizationId: org.id, workspaceId, port: 3000, public: true })
    const url = await t.call('GET', `/api/v1/sandboxes/${sandbox.id}/preview-url`, { key: org.key })
    expect(url.json.public).toBe(true)
    const back = await t.call('PATCH', `/api/v1/sandboxes/${sandbox.id}`, { key: org.key, body: { preview_public: false, name: 'renamed', timeout: '2h' } })
    expect(back.json).toMatchObject({ preview_public: false, name: 'renamed', timeout_seconds: 7200 })
    expect((await site(sandbox)).public).toBe(false)
  })

  it('refuses bad input naming the field, and writes nothing', async () => {
    const bad = await t.call('PATCH', `/api/v1/sandboxes/${box.id}`, { key: org.key, body: { preview_public: 'yes', name: 'x' } })
    expect(bad.status).toBe(400)
    expect(bad.json.error.message).toMatch(/preview_public/)
    const unknown = await t.call('PATCH', `/api/v1/sandboxes/${box.id}`, { key: org.key, body: { slug: 'mine' } })
    expect(unknown.status).toBe(400)
    expect(unknown.json.error.message).toMatch(/slug: unknown field/)
    expect((await t.call('GET', `/api/v1/sandboxes/${box.id}`, { key: org.key })).json.name).toBe(box.name)
  })
})

describe('preview tokens', () => {
  it('mints an mp_ token with its URL, shown once; lists and gets never show it; revokes', async () => {
    const before = Date.now()
    const token = await mintPreviewToken({ sandbox_id: box.id, port: 3000, ttl_seconds: 600, external_user_id: 'user_42', metadata: { via: 'test' } })
    expect(token.id).toMatch(/^tok_/)
    expect(token.token).toMatch(/^mp_[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/)
    expect(token.url).toBe(`http://3000-${box.slug}.sandbox.localhost:${edgePort}/?token=${token.token}`)
    expect(token).toMatchObject({ sandbox_id: box.id, port: 3000, workspace_id: workspaceId, revoked_at: null, external_user_id: 'user_42' })
    const expires = Date.parse(token.expires_at)
    expect(expires).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + 600_000)
    expect(expires).toBeLessThanOrEqual(Date.now() + 600_000)

    const listed = await t.call('GET', `/api/v1/preview-tokens?sandbox_id=${box.id}`, { key: org.key })
    expect(listed.status).toBe(200)
    expect(listed.json.data.map((x: { id: string }) => x.id)).toContain(token.id)
    const got = await t.call('GET', `/api/v1/preview-tokens/${token.id}`, { key: org.key })
    const { token: _value, url: _url, ...record } = token
    expect(got.json).toEqual(record)
    for (const res of [listed, got]) {
      expect(res.text).not.toContain(token.token)
      expect(res.text).not.toContain('mp_')
    }
    const filtered = await t.call('GET', '/api/v1/preview-tokens?external_user_id=user_42', { key: org.key })
    expect(filtered.json.data.map((x: { id: string }) => x.id)).toEqual([token.id])

    const revoked = await t.call('DELETE', `/api/v1/preview-tokens/${token.id}`, { key: org.key })
    expect(revoked.status).toBe(200)
    expect(revoked.json.revoked_at).toEqual(expect.any(String))
    expect(revoked.text).not.toContain('mp_')
    const again = await t.call('DELETE', `/api/v1/preview-tokens/${token.id}`, { key: org.key })
    expect(again.json).toEqual(revoked.json)
  })

  it('refuses a ttl over 24 hours, a missing ttl and a bad port, naming the field', async () => {
    const long = await t.call('POST', '/api/v1/preview-tokens', { key: org.key, body: { sandbox_id: box.id, ttl_seconds: 86_401 } })
    expect(long.status).toBe(400)
    expect(long.json.error.message).toMatch(/ttl_seconds/)
    const none = await t.call('POST', '/api/v1/preview-tokens', { key: org.key, body: { sandbox_id: box.id } })
    expect(none.status).toBe(400)
    expect(none.json.error.message).toMatch(/ttl_seconds: required/)
    const port = await t.call('POST', '/api/v1/preview-tokens', { key: org.key, body: { sandbox_id: box.id, ttl_seconds: 60, port: 0 } })
    expect(port.status).toBe(400)
    expect(port.json.error.message).toMatch(/port/)
    const missing = await t.call('POST', '/api/v1/preview-tokens', { key: org.key, body: { sandbox_id: 'sbx_nosuchsandboxatall', ttl_seconds: 60 } })
    expect(missing.status).toBe(404)
  })

  it('an mp_ token opens its sandbox port for a cookie; another sandbox or port is refused', async () => {
    const token = await mintPreviewToken({ sandbox_id: box.id, port: 3000, ttl_seconds: 600 })
    const access = services().previewAccess
    const grant = granted(await access.exchange(await site(box, 3000), token.token, { clientIp: '127.0.0.1' }))
    expect(grant.maxAgeSeconds).toBeGreaterThan(590)
    expect(grant.maxAgeSeconds).toBeLessThanOrEqual(600)
    expect(grant.cookie).not.toContain(token.token)
    expect(await access.admits(await site(box, 3000), grant.cookie)).toBe(true)
    // The cookie names one sandbox and port.
    expect(await access.admits(await site(box, 5173), grant.cookie)).toBe(false)
    expect(await access.admits(await site(other, 3000), grant.cookie)).toBe(false)
    refused(await access.exchange(await site(other, 3000), token.token, { clientIp: '127.0.0.1' }), 403)
    refused(await access.exchange(await site(box, 5173), token.token, { clientIp: '127.0.0.1' }), 403)
    // Tampered values never pass.
    const [body, sig] = grant.cookie.split('.') as [string, string]
    const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(body, 'base64url').toString()), s: other.id })).toString('base64url')
    expect(await access.admits(await site(other, 3000), `${forged}.${sig}`)).toBe(false)
    expect(await access.admits(await site(box, 3000), `${body}.${sig.slice(0, -2)}AA`)).toBe(false)
    expect(await access.admits(await site(box, 3000), token.token.slice(3))).toBe(false) // a token is not a cookie
    expect(await access.admits(await site(box, 3000), 'garbage')).toBe(false)
    const [tokenBody, tokenSig] = token.token.slice(3).split('.') as [string, string]
    const longer = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(tokenBody, 'base64url').toString()), e: 4_000_000_000 })).toString('base64url')
    refused(await access.exchange(await site(box, 3000), `mp_${longer}.${tokenSig}`, { clientIp: '127.0.0.1' }), 401)
  })

  it('a token without a port opens every port of its sandbox, and its URL uses the default port', async () => {
    const token = await mintPreviewToken({ sandbox_id: box.id, ttl_seconds: 60 })
    expect(token.port).toBeNull()
    expect(token.url).toBe(`http://3000-${box.slug}.sandbox.localhost:${edgePort}/?token=${token.token}`)
    const access = services().previewAccess
    for (const port of [3000, 5173, 8080]) {
      const grant = granted(await access.exchange(await site(box, port), token.token, { clientIp: '127.0.0.1' }))
      expect(await access.admits(await site(box, 8443), grant.cookie)).toBe(true)
      expect(await access.admits(await site(other, port), grant.cookie)).toBe(false)
    }
  })

  it('after its TTL, the token and the cookie it opened are refused with 401', async () => {
    const token = await mintPreviewToken({ sandbox_id: box.id, ttl_seconds: 1 })
    const access = services().previewAccess
    const target = await site(box, 3000)
    const answer = await access.exchange(target, token.token, { clientIp: '127.0.0.1' })
    const cookie = answer.ok ? answer.cookie : undefined
    await sleep(Date.parse(token.expires_at) - Date.now() + 50)
    refused(await access.exchange(target, token.token, { clientIp: '127.0.0.1' }), 401)
    if (cookie !== undefined) expect(await access.admits(target, cookie)).toBe(false)
    // A new token restores access.
    const fresh = await mintPreviewToken({ sandbox_id: box.id, ttl_seconds: 60 })
    granted(await access.exchange(target, fresh.token, { clientIp: '127.0.0.1' }))
  })

  it('a revoked token, and cookies it opened, are refused at once here and within 5 s by another edge process', async () => {
    const token = await mintPreviewToken({ sandbox_id: box.id, ttl_seconds: 600 })
    const target = await site(box, 3000)
    const access = services().previewAccess
    // Another process's view: the same store and key, its own caches.
    const elsewhere = new PreviewAccess({ store: t.platform.store, signer: new PreviewSigner(t.platform.store) })
    const grant = granted(await access.exchange(target, token.token, { clientIp: '127.0.0.1' }))
    expect(await access.admits(target, grant.cookie)).toBe(true)
    expect(await elsewhere.admits(target, grant.cookie)).toBe(true)

    expect((await t.call('DELETE', `/api/v1/preview-tokens/${token.id}`, { key: org.key })).status).toBe(200)
    const started = Date.now()
    expect(await access.admits(target, grant.cookie)).toBe(false)
    refused(await access.exchange(target, token.token, { clientIp: '127.0.0.1' }), 401)
    // The other process learns of it when its cached answer (looked up before the revocation) runs out.
    while ((await elsewhere.admits(target, grant.cookie)) && Date.now() - started < 6000) await sleep(50)
    expect(Date.now() - started, 'refused within 5 s (and one poll) of the revocation').toBeLessThan(5000 + 300)
    refused(await elsewhere.exchange(target, token.token, { clientIp: '127.0.0.1' }), 401)
  })

  it('API keys and anything unknown never open a preview', async () => {
    const target = await site(box, 3000)
    const access = services().previewAccess
    for (const value of [org.key, t.rootKey, 'msk_anything', 'garbage', '', 'mp_', 'mp_x.y', 'ms_', 'ms_not-a-real-share-token']) {
      refused(await access.exchange(target, value, { clientIp: '127.0.0.1' }), 401)
    }
    expect(await access.admits(target, org.key)).toBe(false)
  })

  it('a token signed by another platform (another key) is refused', async () => {
    const token = await mintPreviewToken({ sandbox_id: box.id, ttl_seconds: 600 })
    const key = await t.platform.store.settings.get('preview_signing_key')
    expect(key).toMatch(/^[A-Za-z0-9_-]{43}$/)
    const [body] = token.token.slice(3).split('.') as [string]
    const { createHmac } = await import('node:crypto')
    const foreign = createHmac('sha256', Buffer.alloc(32, 7)).update(`preview-token\n${body}`).digest('base64url')
    refused(await services().previewAccess.exchange(await site(box, 3000), `mp_${body}.${foreign}`, { clientIp: '127.0.0.1' }), 401)
  })
})

describe('share tokens', () => {
  it('creates an ms_ link shown once; the token is stored as a SHA-256 hash and the password as scrypt', async () => {
    const password = 'correct horse battery'
    const share = await createShare({ sandbox_id: box.id, port: 3000, password, name: 'Client review', metadata: { deal: 'd1' } })
    expect(share.id).toMatch(/^tok_/)
    expect(share.token).toMatch(/^ms_[A-Za-z0-9_-]{32}$/)
    expect(share.url).toBe(`http://3000-${box.slug}.sandbox.localhost:${edgePort}/?token=${share.token}`)
    expect(share).toMatchObject({ name: 'Client review', has_password: true, expires_at: null, revoked_at: null, port: 3000 })
    expect(share.token.startsWith(share.token_prefix)).toBe(true)
    expect(share.token_prefix.length).toBeLessThan(12)
    expect(share).not.toHaveProperty('password_hash')
    expect(share).not.toHaveProperty('token_hash')

    const row = await t.platform.store.shareTokens.get({ organization_id: org.id }, share.id)
    expect(row?.token_hash).toBe(createHash('sha256').update(share.token).digest('hex'))
    expect(row?.password_hash).toMatch(/^scrypt\$16384\$8\$1\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+$/)
    expect(JSON.stringify(row)).not.toContain(password)
    expect(JSON.stringify(row)).not.toContain(share.token)

    const listed = await t.call('GET', `/api/v1/share-tokens?sandbox_id=${box.id}`, { key: org.key })
    const got = await t.call('GET', `/api/v1/share-tokens/${share.id}`, { key: org.key })
    expect(listed.json.data.map((x: { id: string }) => x.id)).toContain(share.id)
    const { token: _value, url: _url, ...record } = share
    expect(got.json).toEqual(record)
    for (const res of [listed, got]) {
      expect(res.text).not.toContain(share.token)
      expect(res.text).not.toContain(row?.token_hash)
      expect(res.text).not.toContain('scrypt')
      expect(res.text).not.toContain(password)
    }
    const otherList = await t.call('GET', `/api/v1/share-tokens?sandbox_id=${other.id}`, { key: org.key })
    expect(otherList.json.data.map((x: { id: string }) => x.id)).not.toContain(share.id)
  })

  it('refuses a short password, a past expiry and an unknown field, naming them', async () => {
    const short = await t.call('POST', '/api/v1/share-tokens', { key: org.key, body: { sandbox_id: box.id, password: 'short' } })
    expect(short.status).toBe(400)
    expect(short.json.error.message).toMatch(/password/)
    const past = await t.call('POST', '/api/v1/share-tokens', { key: org.key, body: { sandbox_id: box.id, expires_at: '2020-01-01T00:00:00Z' } })
    expect(past.status).toBe(400)
    expect(past.json.error.details.field).toBe('expires_at')
    const notATime = await t.call('POST', '/api/v1/share-tokens', { key: org.key, body: { sandbox_id: box.id, expires_at: 'tomorrow' } })
    expect(notATime.status).toBe(400)
    expect(notATime.json.error.message).toMatch(/expires_at/)
  })

  it('a link without a password opens its sandbox for anyone; revoked, it stops', async () => {
    const share = await createShare({ sandbox_id: box.id })
    expect(share).toMatchObject({ has_password: false, name: 'Share link', port: null })
    const access = services().previewAccess
    const target = await site(box, 5173)
    const grant = granted(await access.exchange(target, share.token, { clientIp: '10.0.0.9' }))
    // The cookie lasts at most 12 hours, even for a link that never expires.
    expect(grant.maxAgeSeconds).toBeLessThanOrEqual(12 * 3600)
    expect(grant.maxAgeSeconds).toBeGreaterThan(12 * 3600 - 5)
    expect(await access.admits(target, grant.cookie)).toBe(true)
    expect(await access.admits(await site(other, 5173), grant.cookie)).toBe(false)
    refused(await access.exchange(await site(other, 3000), share.token, { clientIp: '10.0.0.9' }), 403)

    const revoked = await t.call('DELETE', `/api/v1/share-tokens/${share.id}`, { key: org.key })
    expect(revoked.json.revoked_at).toEqual(expect.any(String))
    refused(await access.exchange(target, share.token, { clientIp: '10.0.0.9' }), 401)
    expect(await access.admits(target, grant.cookie)).toBe(false)
  })

  it('a link with an expiry stops at it, and its cookie with it', async () => {
    const share = await createShare({ sandbox_id: box.id, port: 3000, expires_at: new Date(Date.now() + 1500).toISOString() })
    const access = services().previewAccess
    const target = await site(box, 3000)
    const grant = granted(await access.exchange(target, share.token, { clientIp: '127.0.0.1' }))
    expect(grant.maxAgeSeconds).toBeLessThanOrEqual(2)
    await sleep(Date.parse(share.expires_at) - Date.now() + 1000)
    refused(await access.exchange(target, share.token, { clientIp: '127.0.0.1' }), 401)
    expect(await access.admits(target, grant.cookie)).toBe(false)
  })

  it('a password link asks for the password, and after 5 wrong guesses from one address answers 429', async () => {
    const password = 'open sesame 42'
    const share = await createShare({ sandbox_id: box.id, password })
    const access = services().previewAccess
    const target = await site(box, 3000)
    const ask = refused(await access.exchange(target, share.token, { clientIp: '192.0.2.1' }), 401)
    expect(ask.passwordRequired).toBe(true)
    for (let i = 0; i < 5; i++) {
      const wrong = refused(await access.exchange(target, share.token, { password: `wrong ${i}`, clientIp: '192.0.2.1' }), 401)
      expect(wrong.passwordRequired).toBe(true)
    }
    // Locked out, even with the right password.
    refused(await access.exchange(target, share.token, { password, clientIp: '192.0.2.1' }), 429)
    refused(await access.exchange(target, share.token, { password: 'wrong again', clientIp: '192.0.2.1' }), 429)
    // Another address is not.
    const grant = granted(await access.exchange(target, share.token, { password, clientIp: '192.0.2.2' }))
    expect(await access.admits(target, grant.cookie)).toBe(true)
  })
})
