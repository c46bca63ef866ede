import { newId } from '../../src/core/ids.js'
import type { Store, VersionRecord } from '../../src/store/store.js'

/**
 * A version written straight into the store, numbered by it like a publish's: for tests of
 * what the control plane does with versions (routes, listing, rollback) that need no build.
 * A ready one has a (made-up) static release; any other has none.
 */
export function insertVersionRecord(
  store: Store,
  deployment: { id: string; organization_id: string; workspace_id: string },
  overrides: Partial<Omit<VersionRecord, 'version_number'>> = {},
): Promise<VersionRecord> {
  const now = new Date().toISOString()
  const ready = (overrides.status ?? 'ready') === 'ready'
  return store.versions.insertNext({
    id: newId('version'),
    organization_id: deployment.organization_id,
    workspace_id: deployment.workspace_id,
    deployment_id: deployment.id,
    environment: 'production',
    status: 'ready',
    error: null,
    error_details: null,
    kind: 'static',
    plan: null,
    source_sha256: 'a'.repeat(64),
    release_sha256: ready ? newId('release').padEnd(64, '0') : null,
    release_kind: ready ? 'static' : null,
    sandbox_id: null,
    logs: '',
    created_by: 'key_test',
    external_user_id: null,
    external_project_id: null,
    external_workspace_id: null,
    metadata: {},
    created_at: now,
    updated_at: now,
    finished_at: ready ? now : null,
    ...overrides,
  })
}
