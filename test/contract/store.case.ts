import { expectMiosaError, rejection } from '../helpers/errors.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MiosaError } from '../../src/core/errors.js'
import { newId, randomBase32 } from '../../src/core/ids.js'
import type { Organization } from '../../src/schemas/organizations.js'
import type { Project } from '../../src/schemas/projects.js'
import type { Workspace } from '../../src/schemas/workspaces.js'
import { DEFAULT_RUNTIME_SETTINGS } from '../../src/schemas/deployments.js'
import type {
  ApiKeyRecord,
  DeploymentRecord,
  EnvVarRecord,
  OrgScope,
  PreviewTokenRecord,
  SandboxRecord,
  ShareTokenRecord,
  Store,
  VersionRecord,
} from '../../src/store/store.js'

// The contract every Store dialect runs (SQLite, PostgreSQL): only the public Store
// interface, against a real database. Every test makes its own organizations and slugs,
// so the tests share one database without seeing each other's rows.

export interface OpenedStore {
  store: Store
  close(): Promise<void>
}

const NOW = '2026-03-01T12:00:00.000Z'

const NO_ATTRIBUTION = { external_user_id: null, external_project_id: null, external_workspace_id: null, metadata: {} }

/** A distinct, valid slug (lowercase base32 is DNS-safe). */
function slug(prefix: string): string {
  return `${prefix}-${randomBase32(10)}`
}

/** An ISO timestamp `seconds` after a fixed instant: same length, so text order is time order. */
function at(seconds: number): string {
  return new Date(Date.UTC(2026, 0, 1, 0, 0, seconds)).toISOString()
}

function organization(overrides: Partial<Organization> = {}): Organization {
  return {
    id: newId('organization'),
    name: 'Acme',
    slug: slug('org'),
    ...NO_ATTRIBUTION,
    created_at: NOW,
    updated_at: NOW,
    ...overrides,
  }
}

function workspace(organizationId: string, overrides: Partial<Workspace> = {}): Workspace {
  return {
    id: newId('workspace'),
    organization_id: organizationId,
    name: 'Main',
    slug: slug('ws'),
    ...NO_ATTRIBUTION,
    created_at: NOW,
    updated_at: NOW,
    ...overrides,
  }
}

function project(organizationId: string, workspaceId: string, overrides: Partial<Project> = {}): Project {
  return {
    id: newId('project'),
    organization_id: organizationId,
    workspace_id: workspaceId,
    name: 'Site',
    slug: slug('prj'),
    ...NO_ATTRIBUTION,
    created_at: NOW,
    updated_at: NOW,
    ...overrides,
  }
}

function apiKey(organizationId: string, overrides: Partial<ApiKeyRecord> = {}): ApiKeyRecord {
  return {
    id: newId('apiKey'),
    organization_id: organizationId,
    name: 'default',
    prefix: `msk_${randomBase32(6)}`,
    hash: randomBase32(52),
    ...NO_ATTRIBUTION,
    created_at: NOW,
    last_used_at: null,
    revoked_at: null,
    ...overrides,
  }
}

function sandbox(organizationId: string, workspaceId: string, overrides: Partial<SandboxRecord> = {}): SandboxRecord {
  return {
    id: newId('sandbox'),
    organization_id: organizationId,
    workspace_id: workspaceId,
    project_id: null,
    name: 'box',
    slug: randomBase32(8),
    template: 'node',
    state: 'running',
    error: null,
    persistent: true,
    timeout_seconds: 600,
    cpu: 1,
    memory_mb: 512,
    env: {},
    egress: null,
    deployment_id: null,
    environment: null,
    snapshot_id: null,
    forked_from: null,
    runtime_ref: null,
    base_ref: null,
    last_activity_at: NOW,
    preview_public: false,
    ...NO_ATTRIBUTION,
    created_at: NOW,
    updated_at: NOW,
    destroyed_at: null,
    ...overrides,
  }
}

function previewToken(box: SandboxRecord, overrides: Partial<PreviewTokenRecord> = {}): PreviewTokenRecord {
  return {
    id: newId('token'),
    organization_id: box.organization_id,
    workspace_id: box.workspace_id,
    sandbox_id: box.id,
    port: 3000,
    expires_at: at(3600),
    revoked_at: null,
    ...NO_ATTRIBUTION,
    created_at: NOW,
    ...overrides,
  }
}

function shareToken(box: SandboxRecord, overrides: Partial<ShareTokenRecord> = {}): ShareTokenRecord {
  return {
    id: newId('token'),
    organization_id: box.organization_id,
    workspace_id: box.workspace_id,
    sandbox_id: box.id,
    port: null,
    name: 'Share link',
    token_hash: randomBase32(52),
    token_prefix: 'ms_abcdef',
    password_hash: null,
    expires_at: null,
    revoked_at: null,
    ...NO_ATTRIBUTION,
    created_at: NOW,
    ...overrides,
  }
}

function deployment(organizationId: string, workspaceId: string, overrides: Partial<DeploymentRecord> = {}): DeploymentRecord {
  return {
    id: newId('deployment'),
    organization_id: organizationId,
    workspace_id: workspaceId,
    project_id: null,
    name: 'Smile Dental',
    slug: slug('app'),
    spa_fallback: false,
    ...DEFAULT_RUNTIME_SETTINGS,
    ...NO_ATTRIBUTION,
    created_at: NOW,
    updated_at: NOW,
    ...overrides,
  }
}

function version(dep: DeploymentRecord, overrides: Partial<VersionRecord> = {}): Omit<VersionRecord, 'version_number'> {
  return {
    id: newId('version'),
    organization_id: dep.organization_id,
    workspace_id: dep.workspace_id,
    deployment_id: dep.id,
    environment: 'production',
    status: 'building',
    error: null,
    error_details: null,
    kind: 'auto',
    plan: null,
    source_sha256: null,
    release_sha256: null,
    release_kind: null,
    sandbox_id: null,
    logs: '',
    created_by: 'key_test',
    ...NO_ATTRIBUTION,
    created_at: NOW,
    updated_at: NOW,
    finished_at: null,
    ...overrides,
  }
}

/** Sorted ids of rows, for set comparisons. */
function ids(rows: readonly { id: string }[]): string[] {
  return rows.map((row) => row.id).sort()
}

/** Byte-order compare, the order the ids below are built to share with every collation. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

export function storeContract(name: string, open: () => Promise<OpenedStore>): void {
  describe(`Store contract: ${name}`, () => {
    let opened: OpenedStore | undefined
    let store: Store

    beforeAll(async () => {
      opened = await open()
      store = opened.store
      await store.migrate()
    })

    afterAll(async () => {
      await opened?.close()
    })

    /** A fresh organization and its scope. */
    async function newOrganization(overrides: Partial<Organization> = {}): Promise<{ org: Organization; scope: OrgScope }> {
      const org = await store.organizations.insert(organization(overrides))
      return { org, scope: { organization_id: org.id } }
    }

    describe('schema and health', () => {
      it('migrate() is idempotent and keeps existing rows', async () => {
        const { org } = await newOrganization()
        await store.migrate()
        await store.migrate()
        expect(await store.organizations.get({}, org.id)).toEqual(org)
      })

      it('ping() answers', async () => {
        await expect(store.ping()).resolves.toBeUndefined()
      })
    })

    describe('round trips', () => {
      const metadata = {
        plan: 'pro',
        'région 日本': 'ünïcødé ✓ 🚀 数据',
        quotes: `she said "hi" and it's \\ fine`,
        'key "with" quotes': 'value',
        empty: '',
        json: '{"not":"parsed"}',
      }

      it('organizations come back exactly as inserted', async () => {
        const withIds = organization({
          name: 'Ünïcødé Org "quoted"',
          external_user_id: 'user-1',
          external_project_id: 'proj-1',
          external_workspace_id: 'ws-1',
          metadata,
        })
        const bare = organization()
        expect(await store.organizations.insert(withIds)).toEqual(withIds)
        await store.organizations.insert(bare)
        expect(await store.organizations.get({}, withIds.id)).toEqual(withIds)
        const fetched = await store.organizations.get({}, bare.id)
        expect(fetched).toEqual(bare)
        expect(fetched?.external_user_id).toBeNull()
        expect(fetched?.metadata).toEqual({})
      })

      it('workspaces, projects and api keys come back exactly as inserted', async () => {
        const { org, scope } = await newOrganization()
        const ws = workspace(org.id, { metadata, external_user_id: 'u-ws', external_workspace_id: null })
        const prj = project(org.id, ws.id, { metadata, external_project_id: 'p-1', external_user_id: null })
        const key = apiKey(org.id, { metadata, last_used_at: at(5), revoked_at: null, external_user_id: 'u-key' })
        await store.workspaces.insert(ws)
        await store.projects.insert(prj)
        await store.apiKeys.insert(key)

        expect(await store.workspaces.get(scope, ws.id)).toEqual(ws)
        expect(await store.projects.get(scope, prj.id)).toEqual(prj)
        expect(await store.apiKeys.get(scope, key.id)).toEqual(key)
        const again = await store.projects.get(scope, prj.id)
        expect(again?.metadata).toEqual(metadata)
        expect(again?.metadata.empty).toBe('')
        expect(again?.external_user_id).toBeNull()
        expect(again?.external_workspace_id).toBeNull()
      })

      it('get of a missing id is undefined', async () => {
        const { scope } = await newOrganization()
        expect(await store.organizations.get({}, newId('organization'))).toBeUndefined()
        expect(await store.workspaces.get(scope, newId('workspace'))).toBeUndefined()
        expect(await store.projects.get(scope, newId('project'))).toBeUndefined()
        expect(await store.apiKeys.get(scope, newId('apiKey'))).toBeUndefined()
      })
    })

    describe('organization scoping', () => {
      it("another organization's workspace is invisible and untouchable", async () => {
        const a = await newOrganization()
        const b = await newOrganization()
        const ws = await store.workspaces.insert(workspace(a.org.id, { metadata: { plan: 'pro' }, external_user_id: 'u-scope' }))

        expect(await store.workspaces.get(b.scope, ws.id)).toBeUndefined()
        expect((await store.workspaces.list(b.scope, { limit: 100 })).data).toEqual([])
        expect(
          (await store.workspaces.list(b.scope, { limit: 100, where: { external_user_id: 'u-scope' }, metadata: { plan: 'pro' } }))
            .data,
        ).toEqual([])
        expect(await store.workspaces.find(b.scope, { id: ws.id })).toEqual([])
        expect(await store.workspaces.find(b.scope, { slug: ws.slug })).toEqual([])

        expect(await store.workspaces.update(b.scope, ws.id, { name: 'stolen', metadata: { owned: 'yes' } })).toBeUndefined()
        expect(await store.workspaces.delete(b.scope, ws.id)).toBe(false)

        // Untouched, and still where it belongs.
        expect(await store.workspaces.get(a.scope, ws.id)).toEqual(ws)
        expect(ids((await store.workspaces.list(a.scope, { limit: 100 })).data)).toEqual([ws.id])
        expect(await store.workspaces.find(a.scope, { slug: ws.slug })).toEqual([ws])
      })

      it("another organization's projects and api keys are invisible and untouchable", async () => {
        const a = await newOrganization()
        const b = await newOrganization()
        const ws = await store.workspaces.insert(workspace(a.org.id))
        const prj = await store.projects.insert(project(a.org.id, ws.id))
        const key = await store.apiKeys.insert(apiKey(a.org.id))

        expect(await store.projects.get(b.scope, prj.id)).toBeUndefined()
        expect(await store.apiKeys.get(b.scope, key.id)).toBeUndefined()
        expect((await store.projects.list(b.scope, { limit: 100, where: { workspace_id: ws.id } })).data).toEqual([])
        expect((await store.apiKeys.list(b.scope, { limit: 100 })).data).toEqual([])
        expect(await store.projects.update(b.scope, prj.id, { name: 'stolen' })).toBeUndefined()
        expect(await store.apiKeys.update(b.scope, key.id, { revoked_at: NOW })).toBeUndefined()
        expect(await store.projects.delete(b.scope, prj.id)).toBe(false)
        expect(await store.apiKeys.delete(b.scope, key.id)).toBe(false)

        expect(await store.projects.get(a.scope, prj.id)).toEqual(prj)
        expect(await store.apiKeys.get(a.scope, key.id)).toEqual(key)
      })
    })

    describe('unique constraints', () => {
      it('a second organization with the same slug is a conflict on slug', async () => {
        const { org } = await newOrganization()
        const clash = organization({ slug: org.slug })
        await expectMiosaError(store.organizations.insert(clash), 'conflict', 'slug')
        expect(await store.organizations.get({}, clash.id)).toBeUndefined()
      })

      it('a second workspace with the same slug is a conflict on slug, across organizations too', async () => {
        const a = await newOrganization()
        const b = await newOrganization()
        const ws = await store.workspaces.insert(workspace(a.org.id))
        await expectMiosaError(store.workspaces.insert(workspace(a.org.id, { slug: ws.slug })), 'conflict', 'slug')
        const elsewhere = workspace(b.org.id, { slug: ws.slug })
        await expectMiosaError(store.workspaces.insert(elsewhere), 'conflict', 'slug')
        expect(await store.workspaces.get(b.scope, elsewhere.id)).toBeUndefined()
      })

      it('renaming a workspace onto a taken slug is a conflict and changes nothing', async () => {
        const { org, scope } = await newOrganization()
        const first = await store.workspaces.insert(workspace(org.id))
        const second = await store.workspaces.insert(workspace(org.id))
        await expectMiosaError(store.workspaces.update(scope, second.id, { slug: first.slug, name: 'renamed' }), 'conflict', 'slug')
        expect(await store.workspaces.get(scope, second.id)).toEqual(second)
      })

      it('project slugs are unique within a workspace only', async () => {
        const { org, scope } = await newOrganization()
        const ws1 = await store.workspaces.insert(workspace(org.id))
        const ws2 = await store.workspaces.insert(workspace(org.id))
        const shared = slug('site')
        const p1 = await store.projects.insert(project(org.id, ws1.id, { slug: shared }))
        const p2 = await store.projects.insert(project(org.id, ws2.id, { slug: shared }))
        expect(await store.projects.get(scope, p1.id)).toEqual(p1)
        expect(await store.projects.get(scope, p2.id)).toEqual(p2)

        const clash = project(org.id, ws1.id, { slug: shared })
        await expectMiosaError(store.projects.insert(clash), 'conflict', 'slug')
        expect(await store.projects.get(scope, clash.id)).toBeUndefined()
      })

      it('api key hashes are unique', async () => {
        const a = await newOrganization()
        const b = await newOrganization()
        const key = await store.apiKeys.insert(apiKey(a.org.id))
        const clash = apiKey(b.org.id, { hash: key.hash })
        await expectMiosaError(store.apiKeys.insert(clash), 'conflict', 'hash')
        expect(await store.apiKeys.get(b.scope, clash.id)).toBeUndefined()
        expect(await store.apiKeys.findByHash(key.hash)).toEqual(key)
      })

      it('a duplicate id is a conflict on id', async () => {
        const { org } = await newOrganization()
        await expectMiosaError(store.organizations.insert(organization({ id: org.id })), 'conflict', 'id')
        expect(await store.organizations.get({}, org.id)).toEqual(org)
      })
    })

    describe('foreign keys', () => {
      it('a project in a workspace that does not exist is a conflict and is not stored', async () => {
        const { org, scope } = await newOrganization()
        const orphan = project(org.id, newId('workspace'))
        await expectMiosaError(store.projects.insert(orphan), 'conflict')
        expect(await store.projects.get(scope, orphan.id)).toBeUndefined()
      })

      it('a workspace of an organization that does not exist is a conflict', async () => {
        const missing = newId('organization')
        const orphan = workspace(missing)
        await expectMiosaError(store.workspaces.insert(orphan), 'conflict')
        expect(await store.workspaces.get({ organization_id: missing }, orphan.id)).toBeUndefined()
      })

      it('a workspace that still has a project cannot be deleted', async () => {
        const { org, scope } = await newOrganization()
        const ws = await store.workspaces.insert(workspace(org.id))
        const prj = await store.projects.insert(project(org.id, ws.id))
        await expectMiosaError(store.workspaces.delete(scope, ws.id), 'conflict')
        expect(await store.workspaces.get(scope, ws.id)).toEqual(ws)
        expect(await store.projects.get(scope, prj.id)).toEqual(prj)

        expect(await store.projects.delete(scope, prj.id)).toBe(true)
        expect(await store.workspaces.delete(scope, ws.id)).toBe(true)
        expect(await store.workspaces.get(scope, ws.id)).toBeUndefined()
        expect(await store.workspaces.delete(scope, ws.id)).toBe(false)
      })
    })

    describe('list pagination', () => {
      // Seven rows, three of them sharing one instant and two another: the id breaks ties.
      const stamps = [at(50), at(40), at(40), at(40), at(30), at(20), at(20)]

      async function seed(): Promise<{ scope: OrgScope; expected: string[] }> {
        const { org, scope } = await newOrganization()
        const rows = stamps.map((created_at, i) =>
          workspace(org.id, { id: `ws_page${randomBase32(12)}${i}`, created_at, updated_at: created_at }),
        )
        // Insert in an order unrelated to the expected one.
        for (const i of [3, 0, 6, 1, 5, 2, 4]) await store.workspaces.insert(rows[i]!)
        const expected = [...rows]
          .sort((x, y) => compare(y.created_at, x.created_at) || compare(y.id, x.id))
          .map((row) => row.id)
        return { scope, expected }
      }

      it('walks every row once, newest first, three at a time', async () => {
        const { scope, expected } = await seed()
        const seen: string[] = []
        const pages: number[] = []
        let cursor: string | undefined
        for (let guard = 0; guard < 10; guard++) {
          const page = await store.workspaces.list(scope, { limit: 3, cursor })
          seen.push(...page.data.map((row) => row.id))
          pages.push(page.data.length)
          if (page.next_cursor === null) break
          expect(typeof page.next_cursor).toBe('string')
          cursor = page.next_cursor
        }
        expect(pages).toEqual([3, 3, 1])
        expect(seen).toEqual(expected)
        expect(new Set(seen).size).toBe(7)
      })

      it('answers a null next_cursor when the last page is exactly full', async () => {
        const { scope, expected } = await seed()
        const all = await store.workspaces.list(scope, { limit: 7 })
        expect(all.data.map((row) => row.id)).toEqual(expected)
        expect(all.next_cursor).toBeNull()

        const first = await store.workspaces.list(scope, { limit: 6 })
        expect(first.next_cursor).not.toBeNull()
        const last = await store.workspaces.list(scope, { limit: 6, cursor: first.next_cursor ?? undefined })
        expect(last.data.map((row) => row.id)).toEqual(expected.slice(6))
        expect(last.next_cursor).toBeNull()
      })

      it('returns full rows in pages, including their metadata', async () => {
        const { org, scope } = await newOrganization()
        const ws = await store.workspaces.insert(workspace(org.id, { metadata: { a: '1', 'b "q"': 'é' } }))
        const page = await store.workspaces.list(scope, { limit: 10 })
        expect(page.data).toEqual([ws])
      })

      it('walks the platform-wide organizations list without repeats or gaps', async () => {
        for (let i = 0; i < 3; i++) await newOrganization({ created_at: at(i), updated_at: at(i) })
        const everything = (await store.organizations.list({}, { limit: 10_000 })).data.map((o) => o.id)
        const walked: string[] = []
        let cursor: string | undefined
        for (let guard = 0; guard < 10_000; guard++) {
          const page = await store.organizations.list({}, { limit: 2, cursor })
          walked.push(...page.data.map((o) => o.id))
          if (page.next_cursor === null) break
          cursor = page.next_cursor
        }
        expect(walked).toEqual(everything)
        expect(new Set(walked).size).toBe(walked.length)
      })

      it('an invalid cursor is rejected as invalid', async () => {
        const { scope } = await newOrganization()
        const bad = [
          'not-a-cursor',
          '!!!',
          Buffer.from('{"created_at":"x"}').toString('base64url'),
          Buffer.from('[1,2]').toString('base64url'),
          Buffer.from('["only-one"]').toString('base64url'),
        ]
        for (const cursor of bad) {
          await expectMiosaError(store.workspaces.list(scope, { limit: 3, cursor }), 'invalid', 'cursor')
        }
      })
    })

    describe('list filters', () => {
      async function seed() {
        const { org, scope } = await newOrganization()
        const quoted = `it's "quoted"`
        const w1 = await store.workspaces.insert(
          workspace(org.id, {
            created_at: at(4),
            external_user_id: 'user-1',
            external_project_id: 'proj-1',
            external_workspace_id: 'wsx-1',
            metadata: { plan: 'pro', region: 'eu', [quoted]: 'yes', 'a.b': 'dot', tier: '' },
          }),
        )
        const w2 = await store.workspaces.insert(
          workspace(org.id, { created_at: at(3), external_user_id: 'user-1', metadata: { plan: 'pro', region: 'us' } }),
        )
        const w3 = await store.workspaces.insert(
          workspace(org.id, {
            created_at: at(2),
            external_user_id: 'user-2',
            external_project_id: 'proj-2',
            metadata: { plan: 'free', region: 'eu', a: 'b' },
          }),
        )
        const w4 = await store.workspaces.insert(workspace(org.id, { created_at: at(1) }))
        // Same attribution in another organization: never part of the answers.
        const other = await newOrganization()
        await store.workspaces.insert(
          workspace(other.org.id, {
            external_user_id: 'user-1',
            external_project_id: 'proj-1',
            external_workspace_id: 'wsx-1',
            metadata: { plan: 'pro', region: 'eu', [quoted]: 'yes', 'a.b': 'dot' },
          }),
        )
        return { scope, quoted, w1, w2, w3, w4 }
      }

      it('filters on external ids', async () => {
        const { scope, w1, w2, w3, w4 } = await seed()
        const list = async (where: Partial<Workspace>) => (await store.workspaces.list(scope, { limit: 100, where })).data
        expect((await list({ external_user_id: 'user-1' })).map((w) => w.id)).toEqual([w1.id, w2.id])
        expect((await list({ external_project_id: 'proj-1' })).map((w) => w.id)).toEqual([w1.id])
        expect((await list({ external_workspace_id: 'wsx-1' })).map((w) => w.id)).toEqual([w1.id])
        expect((await list({ external_user_id: 'user-2', external_project_id: 'proj-2' })).map((w) => w.id)).toEqual([w3.id])
        expect(await list({ external_user_id: 'user-2', external_project_id: 'proj-1' })).toEqual([])
        expect(await list({ external_user_id: 'nobody' })).toEqual([])
        // An undefined filter is no filter.
        expect((await list({ external_user_id: undefined })).map((w) => w.id)).toEqual([w1.id, w2.id, w3.id, w4.id])
      })

      it('filters on metadata, every key at once', async () => {
        const { scope, quoted, w1, w2, w3 } = await seed()
        const list = async (metadata: Record<string, string>) =>
          (await store.workspaces.list(scope, { limit: 100, metadata })).data.map((w) => w.id)
        expect(await list({ plan: 'pro' })).toEqual([w1.id, w2.id])
        expect(await list({ plan: 'pro', region: 'eu' })).toEqual([w1.id])
        expect(await list({ region: 'eu', plan: 'free' })).toEqual([w3.id])
        expect(await list({ plan: 'free', region: 'us' })).toEqual([])
        expect(await list({ plan: 'enterprise' })).toEqual([])
        expect(await list({ [quoted]: 'yes' })).toEqual([w1.id])
        // A dot is part of the key, not a path: "a.b" is not metadata.a.b (w3 has a: 'b').
        expect(await list({ 'a.b': 'dot' })).toEqual([w1.id])
        expect(await list({ a: 'b' })).toEqual([w3.id])
        // An empty value matches only a key that is present and empty.
        expect(await list({ tier: '' })).toEqual([w1.id])
        // A value matches exactly, never as a pattern.
        expect(await list({ plan: 'pr%' })).toEqual([])
        expect(await list({ plan: 'PRO' })).toEqual([])
      })

      it('combines external-id and metadata filters, and pages through the filtered rows', async () => {
        const { scope, w1, w2 } = await seed()
        const both = await store.workspaces.list(scope, { limit: 100, where: { external_user_id: 'user-1' }, metadata: { region: 'us' } })
        expect(both.data.map((w) => w.id)).toEqual([w2.id])

        const first = await store.workspaces.list(scope, { limit: 1, metadata: { plan: 'pro' } })
        expect(first.data.map((w) => w.id)).toEqual([w1.id])
        expect(first.next_cursor).not.toBeNull()
        const second = await store.workspaces.list(scope, { limit: 1, metadata: { plan: 'pro' }, cursor: first.next_cursor ?? undefined })
        expect(second.data.map((w) => w.id)).toEqual([w2.id])
        expect(second.next_cursor).toBeNull()
      })

      it('lists the projects of one workspace', async () => {
        const { org, scope } = await newOrganization()
        const ws1 = await store.workspaces.insert(workspace(org.id))
        const ws2 = await store.workspaces.insert(workspace(org.id))
        const p1 = await store.projects.insert(project(org.id, ws1.id, { created_at: at(2) }))
        const p2 = await store.projects.insert(project(org.id, ws1.id, { created_at: at(1) }))
        const p3 = await store.projects.insert(project(org.id, ws2.id))
        expect((await store.projects.list(scope, { limit: 10, where: { workspace_id: ws1.id } })).data).toEqual([p1, p2])
        expect((await store.projects.list(scope, { limit: 10, where: { workspace_id: ws2.id } })).data).toEqual([p3])
      })
    })

    describe('update and find', () => {
      it('update patches only the given fields', async () => {
        const { org, scope } = await newOrganization()
        const ws = await store.workspaces.insert(
          workspace(org.id, { name: 'Before', external_user_id: 'u-1', external_project_id: 'p-1', metadata: { keep: 'me' } }),
        )
        const bystander = await store.workspaces.insert(workspace(org.id, { name: 'Bystander' }))

        const renamed = await store.workspaces.update(scope, ws.id, { name: 'After', updated_at: at(9) })
        expect(renamed).toEqual({ ...ws, name: 'After', updated_at: at(9) })
        expect(await store.workspaces.get(scope, ws.id)).toEqual(renamed)

        const metadata = { new: 'map', 'ü "q"': '', emoji: '🚀' }
        const patched = await store.workspaces.update(scope, ws.id, { metadata, external_user_id: null })
        expect(patched).toEqual({ ...ws, name: 'After', updated_at: at(9), metadata, external_user_id: null })
        expect(await store.workspaces.get(scope, ws.id)).toEqual(patched)
        // The new metadata is what filters see.
        expect((await store.workspaces.list(scope, { limit: 10, metadata: { emoji: '🚀' } })).data).toEqual([patched])
        expect((await store.workspaces.list(scope, { limit: 10, metadata: { keep: 'me' } })).data).toEqual([])

        expect(await store.workspaces.update(scope, ws.id, {})).toEqual(patched)
        expect(await store.workspaces.get(scope, bystander.id)).toEqual(bystander)
      })

      it('update of a missing id is undefined', async () => {
        const { scope } = await newOrganization()
        expect(await store.workspaces.update(scope, newId('workspace'), { name: 'ghost' })).toBeUndefined()
        expect(await store.organizations.update({}, newId('organization'), { name: 'ghost' })).toBeUndefined()
      })

      it('update of an organization and an api key', async () => {
        const { org, scope } = await newOrganization({ metadata: { a: '1' } })
        const updated = await store.organizations.update({}, org.id, { name: 'Renamed', metadata: { b: '2' } })
        expect(updated).toEqual({ ...org, name: 'Renamed', metadata: { b: '2' } })
        const key = await store.apiKeys.insert(apiKey(org.id))
        const revoked = await store.apiKeys.update(scope, key.id, { revoked_at: at(7), last_used_at: at(6) })
        expect(revoked).toEqual({ ...key, revoked_at: at(7), last_used_at: at(6) })
        expect(await store.apiKeys.findByHash(key.hash)).toEqual(revoked)
      })

      it('find() answers the rows matching where, within the scope', async () => {
        const { org, scope } = await newOrganization()
        const w1 = await store.workspaces.insert(workspace(org.id, { external_user_id: 'finder' }))
        const w2 = await store.workspaces.insert(workspace(org.id, { external_user_id: 'finder' }))
        const w3 = await store.workspaces.insert(workspace(org.id, { external_user_id: 'other' }))
        expect(await store.workspaces.find(scope, { slug: w1.slug })).toEqual([w1])
        expect(ids(await store.workspaces.find(scope, { external_user_id: 'finder' }))).toEqual(ids([w1, w2]))
        expect(await store.workspaces.find(scope, { external_user_id: 'finder' }, 1)).toHaveLength(1)
        expect(ids(await store.workspaces.find(scope, {}))).toEqual(ids([w1, w2, w3]))
        expect(await store.workspaces.find(scope, { slug: 'no-such-slug' })).toEqual([])
        expect(await store.organizations.find({}, { slug: org.slug })).toEqual([org])
      })
    })

    describe('api key lookup by hash', () => {
      it('finds a key of any organization, and nothing for an unknown hash', async () => {
        const a = await newOrganization()
        const b = await newOrganization()
        const keyA = await store.apiKeys.insert(apiKey(a.org.id))
        const keyB = await store.apiKeys.insert(apiKey(b.org.id, { metadata: { by: 'b' } }))
        expect(await store.apiKeys.findByHash(keyA.hash)).toEqual(keyA)
        const found = await store.apiKeys.findByHash(keyB.hash)
        expect(found).toEqual(keyB)
        expect(found?.organization_id).toBe(b.org.id)
        expect(await store.apiKeys.findByHash(randomBase32(52))).toBeUndefined()
        expect(await store.apiKeys.findByHash('')).toBeUndefined()
        expect(await store.apiKeys.findByHash(keyA.hash.toUpperCase())).toBeUndefined()
      })
    })

    describe('settings', () => {
      it('get of an unset key is undefined; set inserts, then replaces', async () => {
        const key = `setting-${randomBase32(8)}`
        expect(await store.settings.get(key)).toBeUndefined()
        await store.settings.set(key, 'first')
        expect(await store.settings.get(key)).toBe('first')
        await store.settings.set(key, 'ünïcødé "quoted" 🚀')
        expect(await store.settings.get(key)).toBe('ünïcødé "quoted" 🚀')
        await store.settings.set(key, '')
        expect(await store.settings.get(key)).toBe('')
        const other = `setting-${randomBase32(8)}`
        await store.settings.set(other, 'x')
        expect(await store.settings.get(key)).toBe('')
      })
    })

    describe('transactions', () => {
      it('commits every write of a successful transaction and answers its value', async () => {
        const org = organization()
        const setting = `tx-${randomBase32(8)}`
        const result = await store.transaction(async (tx) => {
          await tx.organizations.insert(org)
          const ws = await tx.workspaces.insert(workspace(org.id))
          await tx.settings.set(setting, 'committed')
          // Reads inside see the transaction's own writes.
          expect(await tx.workspaces.get({ organization_id: org.id }, ws.id)).toEqual(ws)
          return ws
        })
        expect(await store.organizations.get({}, org.id)).toEqual(org)
        expect(await store.workspaces.get({ organization_id: org.id }, result.id)).toEqual(result)
        expect(await store.settings.get(setting)).toBe('committed')
      })

      it('a throw rolls back every write made inside, and the error comes out unchanged', async () => {
        const existing = await newOrganization({ name: 'Unchanged' })
        const org = organization()
        const ws = workspace(org.id)
        const setting = `tx-${randomBase32(8)}`
        await store.settings.set(setting, 'before')
        const boom = new Error('boom')
        const error = await rejection(
          store.transaction(async (tx) => {
            await tx.organizations.insert(org)
            await tx.workspaces.insert(ws)
            await tx.projects.insert(project(org.id, ws.id))
            await tx.settings.set(setting, 'during')
            await tx.organizations.update({}, existing.org.id, { name: 'Changed' })
            throw boom
          }),
        )
        expect(error).toBe(boom)
        expect(await store.organizations.get({}, org.id)).toBeUndefined()
        expect(await store.workspaces.get({ organization_id: org.id }, ws.id)).toBeUndefined()
        expect((await store.projects.list({ organization_id: org.id }, { limit: 10 })).data).toEqual([])
        expect(await store.settings.get(setting)).toBe('before')
        expect(await store.organizations.get({}, existing.org.id)).toEqual(existing.org)
      })

      it('a conflict inside rolls back the writes made before it', async () => {
        const taken = await newOrganization()
        const takenWs = await store.workspaces.insert(workspace(taken.org.id))
        const org = organization()
        await expectMiosaError(
          store.transaction(async (tx) => {
            await tx.organizations.insert(org)
            await tx.workspaces.insert(workspace(org.id, { slug: takenWs.slug }))
          }),
          'conflict',
          'slug',
        )
        expect(await store.organizations.get({}, org.id)).toBeUndefined()
        // The store is usable afterwards.
        expect(await store.workspaces.get(taken.scope, takenWs.id)).toEqual(takenWs)
      })

      it('a nested transaction joins the outer one', async () => {
        const kept = organization()
        const inner = organization()
        const value = await store.transaction(async (tx) => {
          await tx.organizations.insert(kept)
          return tx.transaction(async (nested) => {
            await nested.organizations.insert(inner)
            // The nested transaction sees the outer one's uncommitted row.
            expect(await nested.organizations.get({}, kept.id)).toEqual(kept)
            return 42
          })
        })
        expect(value).toBe(42)
        expect(await store.organizations.get({}, kept.id)).toEqual(kept)
        expect(await store.organizations.get({}, inner.id)).toEqual(inner)

        // …and is rolled back with it.
        const outer = organization()
        const nestedOrg = organization()
        await rejection(
          store.transaction(async (tx) => {
            await tx.organizations.insert(outer)
            await tx.transaction(async (nested) => {
              await nested.organizations.insert(nestedOrg)
            })
            throw new Error('outer fails after the nested one succeeded')
          }),
        )
        expect(await store.organizations.get({}, outer.id)).toBeUndefined()
        expect(await store.organizations.get({}, nestedOrg.id)).toBeUndefined()
      })
    })

    describe('background services of sandboxes', () => {
      it('round-trip with their argv and env, are listed by sandbox, scoped, updated and deleted', async () => {
        const { org, scope } = await newOrganization()
        const ws = await store.workspaces.insert(workspace(org.id))
        const box = await store.sandboxes.insert(sandbox(org.id, ws.id))
        const other = await store.sandboxes.insert(sandbox(org.id, ws.id))
        const service = {
          id: newId('process'),
          organization_id: org.id,
          sandbox_id: box.id,
          cmd: ['sh', '-lc', 'npm run dev -- --port "$PORT"'],
          cwd: '/workspace/app',
          env: { PORT: '3000', QUOTE: 'a "b" \\ c' },
          log_path: '/tmp/miosa-services/x.log',
          created_at: NOW,
          started_at: NOW,
        }
        await store.backgroundServices.insert(service)
        await store.backgroundServices.insert({ ...service, id: newId('process'), sandbox_id: other.id, cwd: null, env: {}, started_at: null })
        expect(await store.backgroundServices.get(scope, service.id)).toEqual(service)
        expect(await store.backgroundServices.find(scope, { sandbox_id: box.id })).toEqual([service])
        const { scope: stranger } = await newOrganization()
        expect(await store.backgroundServices.get(stranger, service.id)).toBeUndefined()
        expect(await store.backgroundServices.find(stranger, { sandbox_id: box.id })).toEqual([])
        expect(await store.backgroundServices.delete(stranger, service.id)).toBe(false)
        const later = at(60)
        expect((await store.backgroundServices.update(scope, service.id, { started_at: later }))?.started_at).toBe(later)
        expect(await store.backgroundServices.delete(scope, service.id)).toBe(true)
        expect(await store.backgroundServices.find(scope, { sandbox_id: box.id })).toEqual([])
      })

      it('a service of a sandbox that does not exist is not stored', async () => {
        const { org } = await newOrganization()
        const row = { id: newId('process'), organization_id: org.id, sandbox_id: newId('sandbox'), cmd: ['true'], cwd: null, env: {}, log_path: '/tmp/x', created_at: NOW, started_at: null }
        await expect(store.backgroundServices.insert(row)).rejects.toThrow()
      })
    })

    describe('previews: sandboxes by slug, preview and share tokens, tenant settings', () => {
      /** An organization with a workspace and a running sandbox in it. */
      async function newSandbox(overrides: Partial<SandboxRecord> = {}) {
        const { org, scope } = await newOrganization()
        const ws = await store.workspaces.insert(workspace(org.id))
        const box = await store.sandboxes.insert(sandbox(org.id, ws.id, overrides))
        return { org, scope, ws, box }
      }

      it('a sandbox keeps preview_public (false unless set), and is found by slug across organizations in the states asked for', async () => {
        const { scope, box } = await newSandbox()
        expect(await store.sandboxes.get(scope, box.id)).toEqual(box)
        expect(box.preview_public).toBe(false)
        const made = await store.sandboxes.update(scope, box.id, { preview_public: true })
        expect(made?.preview_public).toBe(true)
        expect(await store.sandboxes.findBySlug(box.slug, ['running', 'paused'])).toEqual(made)
        expect(await store.sandboxes.findBySlug(box.slug, ['paused'])).toBeUndefined()
        expect(await store.sandboxes.findBySlug(randomBase32(8), ['running'])).toBeUndefined()
        await store.sandboxes.update(scope, box.id, { state: 'destroyed', destroyed_at: NOW })
        expect(await store.sandboxes.findBySlug(box.slug, ['creating', 'running', 'paused', 'snapshotting'])).toBeUndefined()
      })

      it('a sandbox keeps its egress policy: null (open), an empty allow-list, or its targets', async () => {
        const { scope, box } = await newSandbox()
        expect((await store.sandboxes.get(scope, box.id))?.egress).toBeNull()
        const closed = await newSandbox({ egress: { allow: [] } })
        expect((await store.sandboxes.get(closed.scope, closed.box.id))?.egress).toEqual({ allow: [] })
        const listed = await newSandbox({ egress: { allow: ['10.0.0.0/8', 'mirror.example.org'] } })
        expect((await store.sandboxes.findByIds([listed.box.id]))[0]?.egress).toEqual({ allow: ['10.0.0.0/8', 'mirror.example.org'] })
      })

      it('preview tokens round-trip, are scoped, listed by sandbox, and found by id across organizations', async () => {
        const { scope, box } = await newSandbox()
        const other = await newSandbox()
        const anyPort = await store.previewTokens.insert(previewToken(box, { port: null, metadata: { by: 'agent' }, external_user_id: 'u-1' }))
        const onePort = await store.previewTokens.insert(previewToken(box, { created_at: at(10) }))
        const elsewhere = await store.previewTokens.insert(previewToken(other.box))
        expect(await store.previewTokens.get(scope, anyPort.id)).toEqual(anyPort)
        expect((await store.previewTokens.get(scope, anyPort.id))?.port).toBeNull()
        expect(await store.previewTokens.get(other.scope, anyPort.id)).toBeUndefined()
        const listed = await store.previewTokens.list(scope, { limit: 10, where: { sandbox_id: box.id } })
        expect(ids(listed.data)).toEqual(ids([anyPort, onePort]))
        expect((await store.previewTokens.list(scope, { limit: 10, where: { external_user_id: 'u-1' } })).data).toEqual([anyPort])
        expect(await store.previewTokens.findById(elsewhere.id)).toEqual(elsewhere)
        expect(await store.previewTokens.findById(newId('token'))).toBeUndefined()
        expect(await store.previewTokens.update(other.scope, onePort.id, { revoked_at: NOW })).toBeUndefined()
        expect((await store.previewTokens.update(scope, onePort.id, { revoked_at: NOW }))?.revoked_at).toBe(NOW)
      })

      it('a preview token of a sandbox that does not exist is not stored', async () => {
        const { org } = await newOrganization()
        const ws = await store.workspaces.insert(workspace(org.id))
        const ghost = sandbox(org.id, ws.id)
        const error = await expectMiosaError(store.previewTokens.insert(previewToken(ghost)), 'conflict')
        expect(error.message).toMatch(/preview token/)
        expect(await store.previewTokens.findById(ghost.id)).toBeUndefined()
      })

      it('share tokens round-trip, are found by hash and id across organizations, and their hashes are unique', async () => {
        const { scope, box } = await newSandbox()
        const other = await newSandbox()
        const share = await store.shareTokens.insert(
          shareToken(box, { port: 5173, password_hash: 'scrypt$16384$8$1$c2FsdA$aGFzaA', expires_at: at(99), name: 'Client "review" ✓' }),
        )
        expect(await store.shareTokens.get(scope, share.id)).toEqual(share)
        expect(await store.shareTokens.get(other.scope, share.id)).toBeUndefined()
        expect(await store.shareTokens.findByHash(share.token_hash)).toEqual(share)
        expect(await store.shareTokens.findByHash(share.token_hash.toUpperCase())).toBeUndefined()
        expect(await store.shareTokens.findById(share.id)).toEqual(share)
        await expectMiosaError(store.shareTokens.insert(shareToken(other.box, { token_hash: share.token_hash })), 'conflict', 'token_hash')
        expect((await store.shareTokens.list(other.scope, { limit: 10 })).data).toEqual([])
      })

      it('tenant settings: an upsert creates the row, later ones change only the fields given', async () => {
        const { org, scope } = await newOrganization()
        const ws = await store.workspaces.insert(workspace(org.id))
        expect(await store.tenantSettings.get(scope, ws.id)).toBeUndefined()
        const branding = { logo_url: 'https://cdn.example.com/logo "x".svg', accent_color: '#0f766e', support_url: null, updated_at: at(1) }
        const created = await store.tenantSettings.upsert(scope, ws.id, { branding, updated_at: at(1) })
        expect(created).toEqual({
          workspace_id: ws.id,
          organization_id: org.id,
          branding,
          preview_domain: null,
          preview_domain_verified_at: null,
          updated_at: at(1),
        })
        const domain = `preview-${randomBase32(8)}.example.com`
        const withDomain = await store.tenantSettings.upsert(scope, ws.id, { preview_domain: domain, updated_at: at(2) })
        expect(withDomain).toEqual({ ...created, preview_domain: domain, updated_at: at(2) })
        const verified = await store.tenantSettings.upsert(scope, ws.id, { preview_domain_verified_at: at(3), updated_at: at(3) })
        expect(verified?.branding).toEqual(branding)
        expect(await store.tenantSettings.findByPreviewDomain(domain)).toEqual(verified)
        expect(await store.tenantSettings.findByWorkspace(ws.id)).toEqual(verified)
        expect(await store.tenantSettings.findByPreviewDomain(`other-${domain}`)).toBeUndefined()
        const cleared = await store.tenantSettings.upsert(scope, ws.id, { branding: null, updated_at: at(4) })
        expect(cleared?.branding).toBeNull()
        expect(cleared?.preview_domain).toBe(domain)
      })

      it("tenant settings: preview domains are unique across workspaces and organizations; another organization's row is untouchable", async () => {
        const a = await newOrganization()
        const b = await newOrganization()
        const wsA = await store.workspaces.insert(workspace(a.org.id))
        const wsA2 = await store.workspaces.insert(workspace(a.org.id))
        const wsB = await store.workspaces.insert(workspace(b.org.id))
        const domain = `preview-${randomBase32(8)}.example.com`
        const row = await store.tenantSettings.upsert(a.scope, wsA.id, { preview_domain: domain, updated_at: at(1) })
        await expectMiosaError(store.tenantSettings.upsert(a.scope, wsA2.id, { preview_domain: domain, updated_at: at(2) }), 'conflict', 'preview_domain')
        await expectMiosaError(store.tenantSettings.upsert(b.scope, wsB.id, { preview_domain: domain, updated_at: at(2) }), 'conflict', 'preview_domain')
        // Two workspaces without a domain are no clash (NULLs are distinct).
        await store.tenantSettings.upsert(a.scope, wsA2.id, { preview_domain: null, updated_at: at(2) })
        await store.tenantSettings.upsert(b.scope, wsB.id, { preview_domain: null, updated_at: at(2) })

        expect(await store.tenantSettings.get(b.scope, wsA.id)).toBeUndefined()
        expect(await store.tenantSettings.upsert(b.scope, wsA.id, { preview_domain: 'stolen.example.com', updated_at: at(3) })).toBeUndefined()
        expect(await store.tenantSettings.delete(b.scope, wsA.id)).toBe(false)
        expect(await store.tenantSettings.get(a.scope, wsA.id)).toEqual(row)
        expect(await store.tenantSettings.delete(a.scope, wsA.id)).toBe(true)
        expect(await store.tenantSettings.findByPreviewDomain(domain)).toBeUndefined()
      })

      it('settings.setIfAbsent keeps the first value', async () => {
        const key = `once-${randomBase32(8)}`
        expect(await store.settings.setIfAbsent(key, 'first')).toBe('first')
        expect(await store.settings.setIfAbsent(key, 'second')).toBe('first')
        expect(await store.settings.get(key)).toBe('first')
        const raced = `race-${randomBase32(8)}`
        const values = await Promise.all(['a', 'b', 'c', 'd'].map((v) => store.settings.setIfAbsent(raced, v)))
        expect(new Set(values).size).toBe(1)
      })
    })

    describe('deployments, versions, routes and releases', () => {
      async function newDeployment(): Promise<{ scope: OrgScope; dep: DeploymentRecord; ws: Workspace }> {
        const { org, scope } = await newOrganization()
        const ws = await store.workspaces.insert(workspace(org.id))
        const dep = await store.deployments.insert(deployment(org.id, ws.id))
        return { scope, dep, ws }
      }

      it('round-trips a deployment and a version (plan JSON, booleans) and finds a deployment by its host', async () => {
        const { scope, dep, ws } = await newDeployment()
        expect(await store.deployments.get(scope, dep.id)).toEqual(dep)
        const plan = { kind: 'static' as const, detected: 'node' as const, install: ['npm', 'ci'], build: null, output_dir: 'dist', start: null, spa_fallback: true, reasons: ['a'] }
        const v = await store.versions.insertNext(version(dep, { plan, metadata: { k: 'v' } }))
        expect(v.version_number).toBe(1)
        expect(await store.versions.get(scope, v.id)).toEqual(v)
        expect(await store.versions.findById(v.id)).toEqual(v)
        expect(await store.deployments.findByHost(ws.slug, dep.slug)).toEqual(dep)
        expect(await store.deployments.findByHost(ws.slug, 'no-such-app')).toBeUndefined()
        expect(await store.deployments.findByHost('no-such-ws', dep.slug)).toBeUndefined()
      })

      it("keeps a failed version's error details (the output that says why) as JSON", async () => {
        const { scope, dep } = await newDeployment()
        const v = await store.versions.insertNext(version(dep))
        const error_details = { output: ['> next build', "Error: Cannot find module 'x'", 'ünïcode ✓'], source: 'build' as const, port: null, logs_command: `miosa logs ${v.id}` }
        await store.versions.update(scope, v.id, { status: 'failed', error: 'the build failed', error_details })
        expect(await store.versions.get(scope, v.id)).toMatchObject({ status: 'failed', error_details })
        expect((await store.versions.insertNext(version(dep))).error_details).toBeNull()
      })

      it('slugs are unique per workspace, not across workspaces', async () => {
        const { scope, dep } = await newDeployment()
        const clash = await rejection(store.deployments.insert(deployment(dep.organization_id, dep.workspace_id, { slug: dep.slug })))
        expect(clash).toMatchObject({ code: 'conflict', details: { field: 'slug' } })
        const other = await store.workspaces.insert(workspace(dep.organization_id))
        await store.deployments.insert(deployment(dep.organization_id, other.id, { slug: dep.slug }))
        expect(await store.deployments.find(scope, { slug: dep.slug })).toHaveLength(2)
      })

      it('numbers 10 concurrent versions of one deployment 1..10: no duplicates, no gaps', async () => {
        const { scope, dep } = await newDeployment()
        const made = await Promise.all(Array.from({ length: 10 }, () => store.versions.insertNext(version(dep))))
        expect(made.map((v) => v.version_number).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
        const stored = await store.versions.find(scope, { deployment_id: dep.id })
        expect(stored.map((v) => v.version_number).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
        // Another deployment counts from 1 on its own.
        const other = await store.deployments.insert(deployment(dep.organization_id, dep.workspace_id))
        expect((await store.versions.insertNext(version(other))).version_number).toBe(1)
        expect((await store.versions.insertNext(version(dep))).version_number).toBe(11)
      })

      it('a version of another organization\'s deployment is not_found and takes no number', async () => {
        const { dep } = await newDeployment()
        const { org: stranger } = await newOrganization()
        const refused = await rejection(store.versions.insertNext(version(dep, { organization_id: stranger.id })))
        expect(refused).toMatchObject({ code: 'not_found' })
        expect((await store.versions.insertNext(version(dep))).version_number).toBe(1)
      })

      it('re-points a route to ready versions only, recording every change; onlyIfNewer keeps a later version', async () => {
        const { scope, dep } = await newDeployment()
        const v1 = await store.versions.insertNext(version(dep, { status: 'ready' }))
        const v2 = await store.versions.insertNext(version(dep, { status: 'ready' }))
        const v3 = await store.versions.insertNext(version(dep, { status: 'failed' }))
        const change = (to: string, reason: 'publish' | 'rollback' | 'promote', seconds: number) => ({
          id: newId('routeChange'),
          organization_id: dep.organization_id,
          deployment_id: dep.id,
          environment: 'production',
          to_version_id: to,
          reason,
          actor: 'key_test',
          created_at: at(seconds),
        })
        const first = await store.deploymentRoutes.repoint(scope, change(v2.id, 'publish', 1))
        expect(first).toMatchObject({ from_version_id: null, to_version_id: v2.id })
        expect(await store.deploymentRoutes.repoint(scope, change(v1.id, 'publish', 2), { onlyIfNewer: true })).toBeUndefined()
        const back = await store.deploymentRoutes.repoint(scope, change(v1.id, 'rollback', 3))
        expect(back).toMatchObject({ from_version_id: v2.id, to_version_id: v1.id, reason: 'rollback' })
        expect(await rejection(store.deploymentRoutes.repoint(scope, change(v3.id, 'rollback', 4)))).toMatchObject({ code: 'conflict' })
        expect((await store.deploymentRoutes.get(scope, dep.id, 'production'))?.active_version_id).toBe(v1.id)
        expect((await store.deploymentRoutes.findUnscoped(dep.id, 'production'))?.active_version_id).toBe(v1.id)
        const history = await store.routeChanges.list(scope, { limit: 10, where: { deployment_id: dep.id } })
        expect(history.data.map((c) => c.to_version_id)).toEqual([v1.id, v2.id])
        // Another organization reaches none of it.
        const { scope: stranger } = await newOrganization()
        expect(await store.deploymentRoutes.list(stranger, dep.id)).toEqual([])
        expect(await rejection(store.deploymentRoutes.repoint(stranger, change(v2.id, 'rollback', 5)))).toMatchObject({ code: 'not_found' })
      })

      it('concurrent re-points of one route all land, each recording the version it replaced', async () => {
        const { scope, dep } = await newDeployment()
        const versions = await Promise.all(Array.from({ length: 5 }, () => store.versions.insertNext(version(dep, { status: 'ready' }))))
        await Promise.all(
          versions.map((v, i) =>
            store.deploymentRoutes.repoint(scope, {
              id: newId('routeChange'),
              organization_id: dep.organization_id,
              deployment_id: dep.id,
              environment: 'production',
              to_version_id: v.id,
              reason: 'promote',
              actor: 'key_test',
              created_at: at(i),
            }),
          ),
        )
        const history = await store.routeChanges.find(scope, { deployment_id: dep.id })
        expect(history).toHaveLength(5)
        // A chain: exactly one change started from nothing, and every other from a version some change pointed at.
        expect(history.filter((c) => c.from_version_id === null)).toHaveLength(1)
        const targets = new Set(history.map((c) => c.to_version_id))
        for (const c of history) if (c.from_version_id !== null) expect(targets.has(c.from_version_id)).toBe(true)
        expect(new Set(history.map((c) => c.from_version_id)).size).toBe(5)
      })

      it('records a release once, however often it is put', async () => {
        const sha = randomBase32(52)
        const first = await store.releases.put({ sha256: sha, kind: 'static', size_bytes: 5_000_000_000, created_at: at(1) })
        const again = await store.releases.put({ sha256: sha, kind: 'static', size_bytes: 5_000_000_000, created_at: at(2) })
        expect(first).toEqual({ sha256: sha, kind: 'static', size_bytes: 5_000_000_000, archive_sha256: null, created_at: at(1) })
        expect(again).toEqual(first)
        expect(await store.releases.get(sha)).toEqual(first)
        expect(await store.releases.get('missing')).toBeUndefined()
        // A dynamic release keeps the blob of its image's OCI archive.
        const image = randomBase32(52)
        const dynamic = await store.releases.put({ sha256: image, kind: 'dynamic', size_bytes: 123, archive_sha256: 'a'.repeat(64), created_at: at(3) })
        expect(dynamic).toEqual({ sha256: image, kind: 'dynamic', size_bytes: 123, archive_sha256: 'a'.repeat(64), created_at: at(3) })
      })

      it('keeps runtime instances and their events, scoped, and finds every active route', async () => {
        const { dep } = await newDeployment()
        const ready = await store.versions.insertNext(version(dep, { status: 'ready' }))
        const scope = { organization_id: dep.organization_id }
        const instance = {
          id: newId('instance'),
          organization_id: dep.organization_id,
          workspace_id: dep.workspace_id,
          deployment_id: dep.id,
          environment: 'production',
          version_id: ready.id,
          version_number: ready.version_number,
          state: 'starting' as const,
          runtime_ref: { driver: 'docker', id: 'c0ffee' },
          address: { host: '10.213.4.2', port: 8080 },
          exit_code: null,
          created_at: at(1),
          updated_at: at(1),
          healthy_at: null,
        }
        await store.instances.insert(instance)
        await store.instances.update(scope, instance.id, { state: 'healthy', healthy_at: at(2) })
        expect(await store.instances.get(scope, instance.id)).toEqual({ ...instance, state: 'healthy', healthy_at: at(2) })
        expect(await store.instances.get({ organization_id: 'org_someoneelse' }, instance.id)).toBeUndefined()
        expect((await store.instances.findAllUnscoped()).map((i) => i.id)).toContain(instance.id)
        const event = {
          id: newId('instanceEvent'),
          organization_id: dep.organization_id,
          deployment_id: dep.id,
          environment: 'production',
          instance_id: instance.id,
          version_id: ready.id,
          type: 'exited' as const,
          message: 'exited with 3',
          details: { exit_code: 3, last_logs: ['boom'] },
          created_at: at(3),
        }
        await store.instanceEvents.insert(event)
        expect((await store.instanceEvents.list(scope, { limit: 10, where: { deployment_id: dep.id } })).data).toEqual([event])
        await store.deploymentRoutes.repoint(scope, { id: newId('routeChange'), organization_id: dep.organization_id, deployment_id: dep.id, environment: 'production', to_version_id: ready.id, reason: 'publish', actor: 'key_x', created_at: at(4) })
        expect(await store.deploymentRoutes.findAllActive()).toContainEqual(expect.objectContaining({ deployment_id: dep.id, active_version_id: ready.id }))
        expect((await store.deployments.findByIds([dep.id])).map((d) => d.id)).toEqual([dep.id])
        expect(await store.instances.delete(scope, instance.id)).toBe(true)
      })

      it('finds building versions across organizations', async () => {
        const { dep } = await newDeployment()
        const building = await store.versions.insertNext(version(dep))
        const ready = await store.versions.insertNext(version(dep, { status: 'ready' }))
        const found = ids(await store.versions.findInStatuses(['building']))
        expect(found).toContain(building.id)
        expect(found).not.toContain(ready.id)
      })
    })

    describe('env vars', () => {
      async function newDeployment(): Promise<{ scope: OrgScope; dep: DeploymentRecord }> {
        const { org, scope } = await newOrganization()
        const ws = await store.workspaces.insert(workspace(org.id))
        const dep = await store.deployments.insert(deployment(org.id, ws.id))
        return { scope, dep }
      }

      function envVar(dep: DeploymentRecord, overrides: Partial<EnvVarRecord> = {}): EnvVarRecord {
        return {
          id: newId('envVar'),
          organization_id: dep.organization_id,
          deployment_id: dep.id,
          environment: 'production',
          key: 'API_URL',
          ciphertext: 'Y2lwaGVy',
          nonce: 'bm9uY2Vub25jZQ==',
          key_id: 'k1',
          phase: 'runtime',
          is_secret: false,
          created_at: NOW,
          updated_at: NOW,
          ...overrides,
        }
      }

      it('round-trips rows; a write of an existing key replaces its value and keeps its id and created_at', async () => {
        const { scope, dep } = await newDeployment()
        const [a, b] = await store.envVars.upsertMany(scope, [envVar(dep), envVar(dep, { key: 'SECRET', is_secret: true, phase: 'both' })])
        expect(a).toEqual(envVar(dep, { id: a?.id as string }))
        expect(b).toMatchObject({ key: 'SECRET', is_secret: true, phase: 'both' })
        const [replaced] = await store.envVars.upsertMany(scope, [envVar(dep, { ciphertext: 'bmV3', key_id: 'k2', is_secret: true, updated_at: at(9) })])
        expect(replaced).toMatchObject({ id: a?.id, created_at: NOW, updated_at: at(9), ciphertext: 'bmV3', key_id: 'k2', is_secret: true })
        expect((await store.envVars.list(scope, dep.id)).map((r) => r.key)).toEqual(['API_URL', 'SECRET'])
        expect(await store.envVars.get(scope, dep.id, 'production', 'SECRET')).toEqual(b)
        // The same key in another environment is another row.
        await store.envVars.upsertMany(scope, [envVar(dep, { environment: 'staging' })])
        expect(await store.envVars.list(scope, dep.id, 'staging')).toHaveLength(1)
        expect(await store.envVars.list(scope, dep.id)).toHaveLength(3)
      })

      it('writes a batch whole or not at all', async () => {
        const { scope, dep } = await newDeployment()
        const bad = envVar(dep, { key: 'BAD', deployment_id: 'dep_doesnotexist00000000' })
        await expect(store.envVars.upsertMany(scope, [envVar(dep, { key: 'FIRST' }), bad])).rejects.toBeDefined()
        expect(await store.envVars.list(scope, dep.id)).toEqual([])
      })

      it("another organization's scope neither sees nor deletes a row", async () => {
        const { scope, dep } = await newDeployment()
        await store.envVars.upsertMany(scope, [envVar(dep)])
        const other = await newOrganization()
        expect(await store.envVars.list(other.scope, dep.id)).toEqual([])
        expect(await store.envVars.get(other.scope, dep.id, 'production', 'API_URL')).toBeUndefined()
        expect(await store.envVars.delete(other.scope, dep.id, 'production', 'API_URL')).toBe(false)
        expect(await store.envVars.deleteAll(other.scope, dep.id)).toBe(0)
        expect(await store.envVars.delete(scope, dep.id, 'production', 'API_URL')).toBe(true)
        expect(await store.envVars.delete(scope, dep.id, 'production', 'API_URL')).toBe(false)
      })

      it('finds rows under other keys page by page, and reseals a row only while it is under the expected key', async () => {
        const { scope, dep } = await newDeployment()
        const rows = await store.envVars.upsertMany(scope, ['A', 'B', 'C'].map((key) => envVar(dep, { key, key_id: 'old' })))
        await store.envVars.upsertMany(scope, [envVar(dep, { key: 'D', key_id: 'new' })])
        const mine = new Set(rows.map((r) => r.id))
        const seen: string[] = []
        let after = ''
        for (;;) {
          const page = await store.envVars.findNotUnderKey('new', after, 2)
          if (page.length === 0) break
          for (const row of page) {
            expect(row.key_id).not.toBe('new')
            if (mine.has(row.id)) seen.push(row.id)
          }
          after = page.at(-1)?.id as string
        }
        expect(seen.sort()).toEqual([...mine].sort())
        const first = rows[0] as EnvVarRecord
        expect(await store.envVars.reseal(first.id, 'other', { ciphertext: 'eA==', nonce: 'eQ==', key_id: 'new' })).toBe(false)
        expect(await store.envVars.reseal(first.id, 'old', { ciphertext: 'eA==', nonce: 'eQ==', key_id: 'new' })).toBe(true)
        expect(await store.envVars.get(scope, dep.id, 'production', first.key)).toMatchObject({ ciphertext: 'eA==', nonce: 'eQ==', key_id: 'new' })
        expect(await store.envVars.deleteAll(scope, dep.id)).toBe(4)
      })
    })

    describe('concurrency', () => {
      it('of two concurrent inserts with one slug, exactly one succeeds', async () => {
        const shared = slug('race')
        const rows = [organization({ slug: shared }), organization({ slug: shared })]
        const results = await Promise.allSettled(rows.map((row) => store.organizations.insert(row)))
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1)
        const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected')
        expect(failed).toHaveLength(1)
        expect(failed[0]?.reason).toBeInstanceOf(MiosaError)
        expect(failed[0]?.reason).toMatchObject({ code: 'conflict', details: { field: 'slug' } })
        const stored = await store.organizations.find({}, { slug: shared })
        expect(stored).toHaveLength(1)
      })

      it('of concurrent workspace inserts with one slug, exactly one succeeds', async () => {
        const { org, scope } = await newOrganization()
        const shared = slug('race')
        const results = await Promise.allSettled(
          Array.from({ length: 5 }, () => store.workspaces.insert(workspace(org.id, { slug: shared }))),
        )
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1)
        for (const r of results) {
          if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'conflict', details: { field: 'slug' } })
        }
        expect(await store.workspaces.find(scope, { slug: shared })).toHaveLength(1)
      })
    })
  })
}
