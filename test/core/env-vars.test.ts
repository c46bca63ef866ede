import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { EnvVarService } from '../../src/core/env-vars.js'
import { newId } from '../../src/core/ids.js'
import { Keyring, memoryMasterKeySource } from '../../src/core/secret-box.js'
import { DEFAULT_RUNTIME_SETTINGS } from '../../src/schemas/deployments.js'
import { openSqliteStore } from '../../src/store/kysely/sqlite.js'
import type { Store } from '../../src/store/store.js'
import { expectMiosaError } from '../helpers/errors.js'

// Master-key rotation against a real SQLite store: more rows than one batch, reads and
// writes while it runs, and a row no key opens (the old key is kept, nothing is lost).

let dir: string
let store: Store
const NOW = new Date().toISOString()
const NONE = { external_user_id: null, external_project_id: null, external_workspace_id: null, metadata: {} }

async function newDeployment(): Promise<{ orgId: string; depId: string }> {
  const orgId = newId('organization')
  await store.organizations.insert({ id: orgId, name: 'O', slug: `o-${orgId.slice(4, 14)}`, ...NONE, created_at: NOW, updated_at: NOW })
  const wsId = newId('workspace')
  await store.workspaces.insert({ id: wsId, organization_id: orgId, name: 'W', slug: `w-${wsId.slice(3, 13)}`, ...NONE, created_at: NOW, updated_at: NOW })
  const depId = newId('deployment')
  await store.deployments.insert({
    id: depId, organization_id: orgId, workspace_id: wsId, project_id: null, name: 'A', slug: `a-${depId.slice(4, 14)}`, spa_fallback: false,
    ...DEFAULT_RUNTIME_SETTINGS, ...NONE, created_at: NOW, updated_at: NOW,
  })
  return { orgId, depId }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'miosa-env-vars-'))
})

// A rotation covers every row of the platform: each test gets a database of its own.
beforeEach(async () => {
  store = openSqliteStore(join(dir, `${newId('build')}.db`))
  await store.migrate()
})

afterEach(async () => {
  await store.close()
})

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('master key rotation', () => {
  it('re-seals more rows than a batch while reads and writes go on; afterwards the new key alone opens everything', async () => {
    const source = memoryMasterKeySource()
    const service = new EnvVarService({ store, keys: source })
    const { orgId, depId } = await newDeployment()
    const scope = { organization_id: orgId }
    const vars = Array.from({ length: 180 }, (_, i) => ({ key: `K_${i}`, value: `value-${i}`, is_secret: i % 2 === 0 }))
    await service.setMany(orgId, depId, { environment: 'production', vars: vars.slice(0, 90) })
    await service.setMany(orgId, depId, { environment: 'staging', vars: vars.slice(90) })
    const [oldKey] = await source.load()

    const rotation = service.rotateMasterKey()
    // While it runs: a write under the new key, and reads that open old and new rows alike.
    const [result, , production] = await Promise.all([
      rotation,
      service.set(orgId, depId, { environment: 'production', key: 'DURING', value: 'written mid-rotation', is_secret: true }),
      service.resolve(scope, depId, 'production', 'runtime'),
    ])
    expect(Object.keys(production.env).length).toBeGreaterThanOrEqual(90)
    expect(result.re_encrypted).toBeGreaterThanOrEqual(180)
    const keys = await source.load()
    expect(keys).toHaveLength(1)

    const rows = await store.envVars.list(scope, depId)
    expect(rows).toHaveLength(181)
    const fresh = new Keyring(keys[0] as Buffer)
    const stale = new Keyring(oldKey as Buffer)
    for (const row of rows) {
      expect(row.key_id).toBe(result.key_id)
      expect(() => stale.open(row, row)).toThrow(/cannot be decrypted/)
    }
    const byKey = Object.fromEntries(rows.map((r) => [r.key, fresh.open(r, r)]))
    expect(byKey.K_0).toBe('value-0')
    expect(byKey.K_179).toBe('value-179')
    expect(byKey.DURING).toBe('written mid-rotation')

    // A service started afresh on the same key source reads it all.
    const restarted = new EnvVarService({ store, keys: source })
    expect((await restarted.resolve(scope, depId, 'staging', 'runtime')).env.K_100).toBe('value-100')
  })

  it('keeps the old key when a row cannot be opened, names the row (not its value), and finishes once the row is gone', async () => {
    const source = memoryMasterKeySource()
    const service = new EnvVarService({ store, keys: source })
    const { orgId, depId } = await newDeployment()
    const scope = { organization_id: orgId }
    await service.setMany(orgId, depId, { environment: 'production', vars: [{ key: 'GOOD', value: 'good-value' }, { key: 'BROKEN', value: 'broken-value' }] })
    const broken = (await store.envVars.get(scope, depId, 'production', 'BROKEN'))!
    const good = (await store.envVars.get(scope, depId, 'production', 'GOOD'))!
    // BROKEN now holds GOOD's ciphertext: sealed for another key name, it opens for no one.
    await store.envVars.reseal(broken.id, broken.key_id, { ciphertext: good.ciphertext, nonce: good.nonce, key_id: good.key_id })

    const error = await expectMiosaError(service.rotateMasterKey(), 'conflict')
    expect(error.details).toEqual({ env_var_ids: [broken.id] })
    expect(error.message.includes('good-value') || error.message.includes('broken-value')).toBe(false)
    expect(await source.load()).toHaveLength(2)
    expect((await service.resolve(scope, depId, 'production', 'build')).env).toEqual({})
    expect(await service.list(orgId, depId, { environment: 'staging' })).toEqual({ deployment_id: depId, data: [] })

    await service.unset(orgId, depId, 'production', 'BROKEN')
    const done = await service.rotateMasterKey()
    expect(done.re_encrypted).toBe(1)
    expect(await source.load()).toHaveLength(1)
    expect((await service.resolve(scope, depId, 'production', 'runtime')).env).toEqual({ GOOD: 'good-value' })
  })
})
