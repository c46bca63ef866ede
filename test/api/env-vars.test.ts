import { Writable } from 'node:stream'
import { readFile, readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import pg from 'pg'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MiosaError } from '../../src/core/errors.js'
import { Keyring, generateMasterKey, keyIdOf, parseMasterKey } from '../../src/core/secret-box.js'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'
import { createTestDatabase } from '../helpers/postgres.js'
import type { TestDatabase } from '../helpers/postgres.js'
import { rejection } from '../helpers/errors.js'

// Env vars and secrets through the API, on SQLite and on PostgreSQL: previews, reveal rules,
// validation, all-or-nothing bulk writes; the plaintext of a secret is searched for in the
// database (file bytes, every column) and in every log line and response, and must be absent;
// a ciphertext moved to another row fails to decrypt; master-key rotation leaves every value
// readable with the new key alone.

/** Distinctive values: any occurrence in a log line, a response or the database is a leak. */
const SECRET = 'sk_live_ZETA9secret9value9do9not9leak'
const SECRET_2 = 'pw-OMEGA7second7secret7value'
const PLAIN = 'https://api.plain-value.example'

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`env vars on ${dialect}`, () => {
    let t: TestPlatform
    let database: TestDatabase | undefined
    let org: { id: string; key: string }
    let dep: { id: string; slug: string }
    const logLines: string[] = []
    const bodies: string[] = []

    /** A call whose response body is kept for the final leak check. */
    async function call(method: string, path: string, opts: { key?: string; body?: unknown; rawBody?: string } = {}) {
      const res = await t.call(method, path, { key: org.key, ...opts })
      bodies.push(res.text)
      return res
    }

    beforeAll(async () => {
      database = dialect === 'postgres' ? await createTestDatabase() : undefined
      const sink = new Writable({
        write(chunk: Buffer, _enc, done) {
          logLines.push(chunk.toString('utf8'))
          done()
        },
      })
      t = await startTestPlatform(
        { reconcileIntervalMs: 3_600_000, ...(database === undefined ? {} : { databaseUrl: database.url }) },
        { logger: pino({ level: 'trace' }, sink) },
      )
      org = await t.newOrganization('Env Org')
      const ws = await t.call('POST', '/api/v1/workspaces', { key: org.key, body: { name: 'Env WS' } })
      const created = await t.call('POST', '/api/v1/deployments', { key: org.key, body: { name: 'Env App', workspace_id: ws.json.id } })
      expect(created.status, created.text).toBe(201)
      dep = { id: created.json.id, slug: created.json.slug }
    })

    afterAll(async () => {
      await t?.close()
      await database?.drop()
    })

    it('sets a plain var and a secret; lists previews (abcd…, ••••) and says a restart is needed', async () => {
      const plain = await call('POST', `/api/v1/deployments/${dep.id}/env`, { body: { environment: 'production', key: 'API_URL', value: PLAIN, is_secret: false } })
      expect(plain.status, plain.text).toBe(200)
      expect(plain.json).toMatchObject({
        deployment_id: dep.id,
        environment: 'production',
        restart_required: true,
        restart_command: `miosa restart ${dep.slug} --env production`,
        data: [{ key: 'API_URL', preview: 'http…', is_secret: false, phase: 'runtime', baked: false }],
      })
      expect(plain.json.data[0].value).toBeUndefined()
      const secret = await call('POST', `/api/v1/deployments/${dep.id}/env`, { body: { key: 'STRIPE_KEY', value: SECRET, is_secret: true } })
      expect(secret.status, secret.text).toBe(200)
      expect(secret.json.data[0]).toMatchObject({ key: 'STRIPE_KEY', preview: '••••', is_secret: true, environment: 'production' })

      const listed = await call('GET', `/api/v1/deployments/${dep.id}/env?environment=production`)
      expect(listed.status).toBe(200)
      expect(listed.json.data.map((v: { key: string; preview: string }) => [v.key, v.preview])).toEqual([
        ['API_URL', 'http…'],
        ['STRIPE_KEY', '••••'],
      ])
      for (const v of listed.json.data) expect(v.value).toBeUndefined()
    })

    it('reveals raw values of plain vars only, and only to an organization key', async () => {
      const revealed = await call('GET', `/api/v1/deployments/${dep.id}/env?environment=production&reveal=true`)
      expect(revealed.status).toBe(200)
      const byKey = Object.fromEntries(revealed.json.data.map((v: { key: string }) => [v.key, v]))
      expect(byKey.API_URL).toMatchObject({ value: PLAIN, preview: 'http…' })
      expect(byKey.STRIPE_KEY.value).toBeUndefined()
      expect(byKey.STRIPE_KEY.preview).toBe('••••')
      const root = await call('GET', `/api/v1/deployments/${dep.id}/env?environment=production&reveal=true`, { key: t.rootKey })
      expect(root.status).toBe(403)
      expect(root.json.error.message).toMatch(/organization key/)
    })

    it('defaults NEXT_PUBLIC_* and VITE_* to build and flags them baked; phases resolve per build and runtime', async () => {
      const bulk = await call('POST', `/api/v1/deployments/${dep.id}/env/bulk`, {
        body: {
          environment: 'staging',
          vars: [
            { key: 'NEXT_PUBLIC_SITE', value: 'https://staging.example' },
            { key: 'VITE_FLAG', value: 'on', phase: 'runtime' },
            { key: 'SHARED', value: 'both-ways', phase: 'both' },
            { key: 'DB_PASSWORD', value: SECRET_2, is_secret: true },
          ],
        },
      })
      expect(bulk.status, bulk.text).toBe(200)
      const byKey = Object.fromEntries(bulk.json.data.map((v: { key: string }) => [v.key, v]))
      expect(byKey.NEXT_PUBLIC_SITE).toMatchObject({ phase: 'build', baked: true, preview: 'http…' })
      expect(byKey.VITE_FLAG).toMatchObject({ phase: 'runtime', baked: false, preview: 'on…' })
      expect(byKey.DB_PASSWORD).toMatchObject({ phase: 'runtime', preview: '••••' })

      const scope = { organization_id: org.id }
      const build = await t.platform.services.envVars.resolve(scope, dep.id, 'staging', 'build')
      expect(build).toEqual({ env: { NEXT_PUBLIC_SITE: 'https://staging.example', SHARED: 'both-ways' }, secrets: [] })
      const runtime = await t.platform.services.envVars.resolve(scope, dep.id, 'staging', 'runtime')
      expect(runtime).toEqual({ env: { VITE_FLAG: 'on', SHARED: 'both-ways', DB_PASSWORD: SECRET_2 }, secrets: [SECRET_2] })
      const production = await t.platform.services.envVars.resolve(scope, dep.id, 'production', 'runtime')
      expect(production).toEqual({ env: { API_URL: PLAIN, STRIPE_KEY: SECRET }, secrets: [SECRET] })
    })

    it('refuses bad keys, reserved keys, too long values and unknown deployments with a 4xx naming the field, never echoing a value', async () => {
      const set = (body: Record<string, unknown>, id = dep.id) => call('POST', `/api/v1/deployments/${id}/env`, { body: { environment: 'production', is_secret: true, ...body } })
      const bad = await set({ key: '1BAD-KEY', value: SECRET })
      expect(bad.status).toBe(400)
      expect(bad.json.error.message).toMatch(/key/)
      const long = await set({ key: 'K'.repeat(257), value: SECRET })
      expect(long.status).toBe(400)
      for (const reserved of ['MIOSA_TOKEN', 'PORT', 'miosa_x']) {
        const r = await set({ key: reserved, value: SECRET })
        expect(r.status, reserved).toBe(400)
        expect(r.json.error.details.field).toBe('key')
        expect(r.json.error.message).toMatch(/reserved/)
      }
      const huge = `${SECRET}${'x'.repeat(64 * 1024)}`
      const tooLong = await set({ key: 'BIG', value: huge })
      expect(tooLong.status).toBe(400)
      expect(tooLong.json.error.details.field).toBe('value')
      expect(tooLong.json.error.message).toMatch(/65536-byte limit/)
      const unknown = await set({ key: 'OK_KEY', value: SECRET }, 'dep_doesnotexist000000000')
      expect(unknown.status).toBe(404)
      const badEnv = await set({ key: 'OK_KEY', value: SECRET, environment: 'Not An Env!' })
      expect(badEnv.status).toBe(400)
      expect(badEnv.json.error.message).toMatch(/environment/)
      const notThere = await call('DELETE', `/api/v1/deployments/${dep.id}/env/NOPE?environment=production`)
      expect(notThere.status).toBe(404)
      const malformed = await t.call('POST', `/api/v1/deployments/${dep.id}/env`, { key: org.key, rawBody: `{"key":"A","value":"${SECRET}"` })
      bodies.push(malformed.text)
      expect(malformed.status).toBe(400)
      // A value that is not even quoted: the JSON error must not quote it back.
      const unquoted = await t.call('POST', `/api/v1/deployments/${dep.id}/env`, { key: org.key, rawBody: `{"key":"A","value":${SECRET}}` })
      bodies.push(unquoted.text)
      expect(unquoted.status).toBe(400)
      expect(unquoted.json.error.message).toMatch(/malformed JSON/)
    })

    it('bulk writes are all-or-nothing: one bad var and none is written', async () => {
      const before = await call('GET', `/api/v1/deployments/${dep.id}/env?environment=production`)
      const bulk = await call('POST', `/api/v1/deployments/${dep.id}/env/bulk`, {
        body: {
          environment: 'production',
          vars: [
            { key: 'API_URL', value: 'https://changed.example' },
            { key: 'NEW_ONE', value: SECRET, is_secret: true },
            { key: 'PORT', value: '8080' },
          ],
        },
      })
      expect(bulk.status).toBe(400)
      expect(bulk.json.error.details.field).toBe('vars.2.key')
      const dup = await call('POST', `/api/v1/deployments/${dep.id}/env/bulk`, {
        body: { environment: 'production', vars: [{ key: 'NEW_ONE', value: 'a' }, { key: 'NEW_ONE', value: 'b' }] },
      })
      expect(dup.status).toBe(400)
      const after = await call('GET', `/api/v1/deployments/${dep.id}/env?environment=production`)
      expect(after.json).toEqual(before.json)
    })

    it('unsets a var and says a restart is needed', async () => {
      await call('POST', `/api/v1/deployments/${dep.id}/env`, { body: { key: 'TEMP', value: 'gone soon', is_secret: false } })
      const res = await call('DELETE', `/api/v1/deployments/${dep.id}/env/TEMP?environment=production`)
      expect(res.status, res.text).toBe(200)
      expect(res.json).toEqual({ deployment_id: dep.id, environment: 'production', key: 'TEMP', deleted: true, restart_required: true, restart_command: `miosa restart ${dep.slug} --env production` })
      const listed = await call('GET', `/api/v1/deployments/${dep.id}/env?environment=production`)
      expect(listed.json.data.map((v: { key: string }) => v.key)).not.toContain('TEMP')
    })

    it("a secret's plaintext is nowhere in the database", async () => {
      if (dialect === 'sqlite') {
        // The database file and its WAL, byte for byte.
        const files = (await readdir(t.dataDir)).filter((f) => f.startsWith('miosa.db'))
        expect(files).toContain('miosa.db')
        for (const file of files) {
          const bytes = await readFile(join(t.dataDir, file))
          for (const needle of [SECRET, SECRET_2, PLAIN]) expect(bytes.includes(Buffer.from(needle)), `${needle} in ${file}`).toBe(false)
        }
      } else {
        const client = new pg.Client({ connectionString: database?.url })
        await client.connect()
        try {
          const { rows } = await client.query('SELECT * FROM env_vars')
          expect(rows.length).toBeGreaterThanOrEqual(6)
          const dump = JSON.stringify(rows)
          for (const needle of [SECRET, SECRET_2, PLAIN]) expect(dump.includes(needle), needle).toBe(false)
          // And the base64 of it is not there either (the value is sealed, not encoded).
          expect(dump.includes(Buffer.from(SECRET).toString('base64').slice(0, 20))).toBe(false)
        } finally {
          await client.end()
        }
      }
    })

    it('a ciphertext swapped between two rows fails to decrypt with a clear error naming neither value', async () => {
      const scope = { organization_id: org.id }
      // Two rows of their own, so the swap leaves the other tests' rows alone.
      const made = await call('POST', `/api/v1/deployments/${dep.id}/env/bulk`, {
        body: { environment: 'staging', vars: [{ key: 'SWAP_A', value: SECRET, is_secret: true }, { key: 'SWAP_B', value: SECRET_2, is_secret: true }] },
      })
      expect(made.status, made.text).toBe(200)
      const swap = async (sql: (a: string, b: string) => Promise<void>) => {
        const [a, b] = (await t.platform.store.envVars.list(scope, dep.id, 'staging')).filter((r) => r.key.startsWith('SWAP_'))
        await sql(a?.id as string, b?.id as string)
      }
      if (dialect === 'sqlite') {
        const db = new Database(join(t.dataDir, 'miosa.db'))
        db.pragma('busy_timeout = 5000')
        try {
          await swap(async (a, b) => {
            const rows = db.prepare('SELECT id, ciphertext, nonce FROM env_vars WHERE id IN (?, ?)').all(a, b) as { id: string; ciphertext: string; nonce: string }[]
            const [ra, rb] = [rows.find((r) => r.id === a), rows.find((r) => r.id === b)]
            db.prepare('UPDATE env_vars SET ciphertext = ?, nonce = ? WHERE id = ?').run(rb?.ciphertext, rb?.nonce, a)
            db.prepare('UPDATE env_vars SET ciphertext = ?, nonce = ? WHERE id = ?').run(ra?.ciphertext, ra?.nonce, b)
          })
        } finally {
          db.close()
        }
      } else {
        const client = new pg.Client({ connectionString: database?.url })
        await client.connect()
        try {
          await swap(async (a, b) => {
            await client.query(
              `UPDATE env_vars SET ciphertext = o.ciphertext, nonce = o.nonce FROM env_vars o
               WHERE (env_vars.id = $1 AND o.id = $2) OR (env_vars.id = $2 AND o.id = $1)`,
              [a, b],
            )
          })
        } finally {
          await client.end()
        }
      }
      const error = await rejection(t.platform.services.envVars.resolve(scope, dep.id, 'staging', 'runtime'))
      expect(error).toBeInstanceOf(MiosaError)
      const message = (error as MiosaError).message
      expect(message).toMatch(/SWAP_[AB] in environment staging .* cannot be decrypted for that key\/environment/)
      for (const value of [SECRET, SECRET_2]) {
        expect(message.includes(value)).toBe(false)
        expect(JSON.stringify((error as MiosaError).details).includes(value)).toBe(false)
      }
      // Through the API a list of secrets opens nothing; once unset, the swapped rows are gone for good.
      const listed = await call('GET', `/api/v1/deployments/${dep.id}/env?environment=staging`)
      expect(listed.status).toBe(200)
      await call('DELETE', `/api/v1/deployments/${dep.id}/env/SWAP_A?environment=staging`)
      await call('DELETE', `/api/v1/deployments/${dep.id}/env/SWAP_B?environment=staging`)
    })

    it('no log line and no response carries a secret value', () => {
      expect(logLines.length).toBeGreaterThan(10)
      const log = logLines.join('')
      for (const value of [SECRET, SECRET_2]) {
        expect(log.includes(value), `log carries ${value}`).toBe(false)
        for (const body of bodies) expect(body.includes(value), `a response carries ${value}: ${body.slice(0, 300)}`).toBe(false)
      }
    })

    it('rotates the master key: every value decrypts under the new key alone (a fresh platform on the same data), the old key opens nothing', async () => {
      const keyFile = join(t.dataDir, 'master-key')
      expect((await stat(keyFile)).mode & 0o777).toBe(0o600)
      const oldKey = parseMasterKey((await readFile(keyFile, 'utf8')).trim())
      const scope = { organization_id: org.id }
      const before = {
        production: await t.platform.services.envVars.resolve(scope, dep.id, 'production', 'runtime'),
        staging: await t.platform.services.envVars.resolve(scope, dep.id, 'staging', 'runtime'),
      }
      const count = (await t.platform.store.envVars.list(scope, dep.id)).length

      const refused = await call('POST', '/api/v1/admin/rotate-master-key', { body: { confirm: 'rotate-master-key' } })
      expect(refused.status).toBe(403)
      // A dangerous action is never taken on a body that does not ask for it by name.
      for (const body of ['null', '{}', '[]', '{"confirm":"yes"}']) {
        const unconfirmed = await call('POST', '/api/v1/admin/rotate-master-key', { key: t.rootKey, rawBody: body })
        expect(unconfirmed.status, body).toBe(400)
        expect(unconfirmed.json.error.code).toBe('invalid')
      }
      expect((await t.platform.store.envVars.list(scope, dep.id)).every((r) => r.key_id === keyIdOf(oldKey))).toBe(true)
      // Reads keep working while the rotation runs.
      const [rotated, during] = await Promise.all([
        call('POST', '/api/v1/admin/rotate-master-key', { key: t.rootKey, body: { confirm: 'rotate-master-key' } }),
        t.platform.services.envVars.resolve(scope, dep.id, 'production', 'runtime'),
      ])
      expect(during).toEqual(before.production)
      expect(rotated.status, rotated.text).toBe(200)
      expect(rotated.json).toMatchObject({ re_encrypted: count, key_source: 'file' })
      expect(rotated.json.key_id).not.toBe(keyIdOf(oldKey))

      const fileKeys = (await readFile(keyFile, 'utf8')).trim().split('\n')
      expect(fileKeys).toHaveLength(1)
      expect(keyIdOf(parseMasterKey(fileKeys[0] as string))).toBe(rotated.json.key_id)
      expect((await stat(keyFile)).mode & 0o777).toBe(0o600)
      for (const line of logLines) expect(line.includes(fileKeys[0] as string)).toBe(false)

      const rows = await t.platform.store.envVars.list(scope, dep.id)
      expect(rows.every((r) => r.key_id === rotated.json.key_id)).toBe(true)
      const oldRing = new Keyring(oldKey)
      for (const row of rows) expect(() => oldRing.open(row, row)).toThrow(/cannot be decrypted/)

      // A fresh platform on the same data dir and database: only the new key file to go on.
      await t.close({ keep: true })
      t = await startTestPlatform({ dataDir: t.dataDir, reconcileIntervalMs: 3_600_000, ...(database === undefined ? {} : { databaseUrl: database.url }) })
      expect(await t.platform.services.envVars.resolve(scope, dep.id, 'production', 'runtime')).toEqual(before.production)
      expect(await t.platform.services.envVars.resolve(scope, dep.id, 'staging', 'runtime')).toEqual(before.staging)
    })
  })
}

describe('a master key from MIOSA_MASTER_KEY', () => {
  let t: TestPlatform
  const key = generateMasterKey()

  beforeAll(async () => {
    t = await startTestPlatform({ reconcileIntervalMs: 3_600_000, masterKey: key.toString('hex') })
  })

  afterAll(async () => {
    await t?.close()
  })

  it('is used (no key file is made), and a rotation needs the new key given, to be set there before the next restart', async () => {
    await expect(stat(join(t.dataDir, 'master-key'))).rejects.toThrow()
    const org = await t.newOrganization('Env Key Org')
    const ws = await t.call('POST', '/api/v1/workspaces', { key: org.key, body: { name: 'W' } })
    const dep = await t.call('POST', '/api/v1/deployments', { key: org.key, body: { name: 'App', workspace_id: ws.json.id } })
    const set = await t.call('POST', `/api/v1/deployments/${dep.json.id}/env`, { key: org.key, body: { key: 'TOKEN', value: SECRET, is_secret: true } })
    expect(set.json.data[0].key_id).toBe(keyIdOf(key))

    const refused = await t.call('POST', '/api/v1/admin/rotate-master-key', { key: t.rootKey, body: { confirm: 'rotate-master-key' } })
    expect(refused.status).toBe(400)
    expect(refused.json.error.message).toMatch(/MIOSA_MASTER_KEY/)
    const badKey = await t.call('POST', '/api/v1/admin/rotate-master-key', { key: t.rootKey, body: { confirm: 'rotate-master-key', new_key: 'not-a-key' } })
    expect(badKey.status).toBe(400)
    expect(badKey.json.error.message.includes('not-a-key')).toBe(false)

    const next = generateMasterKey()
    const rotated = await t.call('POST', '/api/v1/admin/rotate-master-key', { key: t.rootKey, body: { confirm: 'rotate-master-key', new_key: next.toString('base64') } })
    expect(rotated.status, rotated.text).toBe(200)
    expect(rotated.json).toMatchObject({ re_encrypted: 1, key_id: keyIdOf(next), key_source: 'env' })
    expect(rotated.json.message).toMatch(/set MIOSA_MASTER_KEY/)
    expect(rotated.text.includes(next.toString('base64'))).toBe(false)

    await t.close({ keep: true })
    t = await startTestPlatform({ dataDir: t.dataDir, reconcileIntervalMs: 3_600_000, masterKey: next.toString('base64') })
    const resolved = await t.platform.services.envVars.resolve({ organization_id: org.id }, dep.json.id, 'production', 'runtime')
    expect(resolved).toEqual({ env: { TOKEN: SECRET }, secrets: [SECRET] })
  })
})
