import { newId, randomBase32 } from '../../src/core/ids.js'
import type { SandboxRecord, Store } from '../../src/store/store.js'

/**
 * A sandbox written straight into the store: for tests of what the control plane does with
 * a sandbox record (tokens, previews, settings) that need no container behind it.
 */
export function insertSandboxRecord(
  store: Store,
  owner: { organization_id: string; workspace_id: string },
  overrides: Partial<SandboxRecord> = {},
): Promise<SandboxRecord> {
  const now = new Date().toISOString()
  return store.sandboxes.insert({
    id: newId('sandbox'),
    organization_id: owner.organization_id,
    workspace_id: owner.workspace_id,
    project_id: null,
    name: 'record only',
    slug: randomBase32(8),
    template: 'node',
    state: 'running',
    error: null,
    persistent: true,
    timeout_seconds: 3600,
    cpu: 1,
    memory_mb: 512,
    env: {},
    egress: null,
    deployment_id: null,
    environment: null,
    snapshot_id: null,
    forked_from: null,
    runtime_ref: { driver: 'docker', id: 'no-such-container' },
    base_ref: null,
    last_activity_at: now,
    preview_public: false,
    external_user_id: null,
    external_project_id: null,
    external_workspace_id: null,
    metadata: {},
    created_at: now,
    updated_at: now,
    destroyed_at: null,
    ...overrides,
  })
}
