import { readFile, readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'

let t: TestPlatform

beforeAll(async () => {
  t = await startTestPlatform()
})

afterAll(async () => {
  await t?.close()
})

describe('authentication', () => {
  it.each([
    ['no Authorization header', undefined, 'missing API key'],
    ['a non-bearer scheme', 'Basic abc', 'Bearer'],
    ['a preview token', 'Bearer mp_abcdef', 'preview'],
    ['a share token', 'Bearer ms_abcdef', 'share'],
    ['an unknown msk_ key', 'Bearer msk_doesnotexist0000000000000', 'invalid or revoked'],
  ])('%s → 401 saying why', async (_name, header, says) => {
    const res = await t.call('GET', '/api/v1/workspaces', { headers: header === undefined ? {} : { authorization: header } })
    expect(res.status).toBe(401)
    expect(res.json.error.code).toBe('unauthenticated')
    expect(res.json.error.message).toContain(says)
  })

  it('never accepts a key in the URL', async () => {
    const { key } = await t.newOrganization()
    const res = await t.call('GET', `/api/v1/workspaces?api_key=${key}`)
    expect(res.status).toBe(401)
  })

  it('whoami tells root from organization keys', async () => {
    const org = await t.newOrganization('Who Org')
    const root = await t.call('GET', '/api/v1/whoami', { key: t.rootKey })
    expect(root.json).toEqual({ kind: 'root', organization: null, api_key_id: null })
    const mine = await t.call('GET', '/v1/whoami', { key: org.key })
    expect(mine.json.kind).toBe('organization')
    expect(mine.json.organization.id).toBe(org.id)
    expect(mine.json.organization.slug).toBe('who-org')
  })
})

describe('organization keys', () => {
  it('are shown once: minted with the value, never listed or read back with it', async () => {
    const org = await t.newOrganization()
    const created = await t.call('POST', '/api/v1/api-keys', { key: org.key, body: { name: 'ci', metadata: { team: 'build' } } })
    expect(created.status).toBe(201)
    expect(created.json.key).toMatch(/^msk_[A-Za-z0-9_-]{32}$/)
    expect(created.json.key.startsWith(created.json.prefix)).toBe(true)
    const got = await t.call('GET', `/api/v1/api-keys/${created.json.id}`, { key: org.key })
    const list = await t.call('GET', '/api/v1/api-keys', { key: org.key })
    for (const text of [got.text, list.text]) {
      expect(text).not.toContain(created.json.key)
      expect(text).not.toContain('"hash"')
      expect(text).not.toContain('"key"')
    }
    expect(got.json.metadata).toEqual({ team: 'build' })
  })

  it('a minted key works, and a revoked key stops working at once', async () => {
    const org = await t.newOrganization()
    const minted = (await t.call('POST', '/api/v1/api-keys', { key: org.key, body: { name: 'short-lived' } })).json
    expect((await t.call('GET', '/api/v1/workspaces', { key: minted.key })).status).toBe(200)
    const revoked = await t.call('DELETE', `/api/v1/api-keys/${minted.id}`, { key: org.key })
    expect(revoked.status).toBe(200)
    expect(revoked.json.revoked_at).not.toBeNull()
    const after = await t.call('GET', '/api/v1/workspaces', { key: minted.key })
    expect(after.status).toBe(401)
    // Revoking again answers the same, and the other key is unaffected.
    const again = await t.call('DELETE', `/api/v1/api-keys/${minted.id}`, { key: org.key })
    expect(again.json.revoked_at).toBe(revoked.json.revoked_at)
    expect((await t.call('GET', '/api/v1/workspaces', { key: org.key })).status).toBe(200)
  })

  it('a key can revoke itself, and then it is refused', async () => {
    const org = await t.newOrganization()
    const me = (await t.call('GET', '/api/v1/whoami', { key: org.key })).json.api_key_id
    expect((await t.call('DELETE', `/api/v1/api-keys/${me}`, { key: org.key })).status).toBe(200)
    expect((await t.call('GET', '/api/v1/whoami', { key: org.key })).status).toBe(401)
  })

  it('records when a key was last used', async () => {
    const org = await t.newOrganization()
    const id = (await t.call('GET', '/api/v1/whoami', { key: org.key })).json.api_key_id
    await new Promise((r) => setTimeout(r, 50))
    const key = await t.call('GET', `/api/v1/api-keys/${id}`, { key: org.key })
    expect(Date.parse(key.json.last_used_at)).toBeGreaterThan(Date.parse(key.json.created_at) - 1)
  })

  it('are stored only as hashes: no key value anywhere in the data dir', async () => {
    const org = await t.newOrganization()
    const extra = (await t.call('POST', '/api/v1/api-keys', { key: org.key, body: {} })).json.key
    await t.platform.store.ping()
    const files = await readdir(t.dataDir)
    const dbFiles = files.filter((f) => f.startsWith('miosa.db'))
    expect(dbFiles.length).toBeGreaterThan(0)
    for (const file of dbFiles) {
      const bytes = await readFile(join(t.dataDir, file))
      for (const secret of [org.key, extra]) expect(bytes.includes(Buffer.from(secret))).toBe(false)
    }
  })
})

describe('the root key', () => {
  it('is generated on first start into <data-dir>/root-key with mode 0600', async () => {
    const info = await stat(join(t.dataDir, 'root-key'))
    expect(info.mode & 0o777).toBe(0o600)
    expect(t.rootKey).toMatch(/^msk_root_/)
    expect((await t.call('GET', '/api/v1/organizations', { key: t.rootKey })).status).toBe(200)
  })

  it('is taken from MIOSA_ROOT_KEY when set, and no key file is written', async () => {
    const rootKey = 'msk_operator_chosen_root_key_123456'
    const p = await startTestPlatform({ rootKey })
    try {
      expect((await p.call('GET', '/api/v1/organizations', { key: rootKey })).status).toBe(200)
      await expect(stat(join(p.dataDir, 'root-key'))).rejects.toThrow(/ENOENT/)
    } finally {
      await p.close()
    }
  })

  it('a weak MIOSA_ROOT_KEY stops the start with a message naming it', async () => {
    await expect(startTestPlatform({ rootKey: 'short' })).rejects.toThrow(/MIOSA_ROOT_KEY/)
  })
})

describe('request ids', () => {
  it('are returned on every answer, and a sane caller-supplied id is kept', async () => {
    const mine = await t.platform.api.inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': 'trace-123' } })
    expect(mine.headers['x-request-id']).toBe('trace-123')
    const hostile = await t.platform.api.inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': 'a b\n<script>' } })
    expect(hostile.headers['x-request-id']).toMatch(/^req_[a-z2-7]{16}$/)
  })
})
