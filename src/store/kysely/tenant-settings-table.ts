import type { Kysely } from 'kysely'
import type { OrgScope, TenantSettingsPatch, TenantSettingsRecord, TenantSettingsStore } from '../store.js'
import { translateConstraintError } from './constraint-errors.js'
import type { AnyDatabase } from './table.js'

// Per-workspace settings, keyed by workspace rather than by an id of their own: one row per
// workspace, written field by field (an upsert), so a branding change and a preview-domain
// change made at the same moment never undo each other.

const TABLE = 'tenant_settings'
const KIND = 'tenant preview domain'

export class TenantSettingsTable implements TenantSettingsStore {
  constructor(private readonly db: Kysely<AnyDatabase>) {}

  async get(scope: OrgScope, workspaceId: string): Promise<TenantSettingsRecord | undefined> {
    const row = await this.db
      .selectFrom(TABLE)
      .selectAll()
      .where('workspace_id', '=', workspaceId)
      .where('organization_id', '=', scope.organization_id)
      .executeTakeFirst()
    return row === undefined ? undefined : decode(row)
  }

  async upsert(scope: OrgScope, workspaceId: string, patch: TenantSettingsPatch): Promise<TenantSettingsRecord | undefined> {
    const values = encode(patch)
    try {
      await this.db
        .insertInto(TABLE)
        .values({
          workspace_id: workspaceId,
          organization_id: scope.organization_id,
          branding: null,
          preview_domain: null,
          preview_domain_verified_at: null,
          ...values,
        })
        // Never another organization's row, whatever workspace id was passed.
        .onConflict((oc) => oc.column('workspace_id').doUpdateSet(values).where(`${TABLE}.organization_id`, '=', scope.organization_id))
        .execute()
    } catch (error) {
      throw translateConstraintError(error, KIND)
    }
    return this.get(scope, workspaceId)
  }

  async delete(scope: OrgScope, workspaceId: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom(TABLE)
      .where('workspace_id', '=', workspaceId)
      .where('organization_id', '=', scope.organization_id)
      .executeTakeFirst()
    return Number(result.numDeletedRows) > 0
  }

  async findByPreviewDomain(domain: string): Promise<TenantSettingsRecord | undefined> {
    const row = await this.db.selectFrom(TABLE).selectAll().where('preview_domain', '=', domain).executeTakeFirst()
    return row === undefined ? undefined : decode(row)
  }

  async findByWorkspace(workspaceId: string): Promise<TenantSettingsRecord | undefined> {
    const row = await this.db.selectFrom(TABLE).selectAll().where('workspace_id', '=', workspaceId).executeTakeFirst()
    return row === undefined ? undefined : decode(row)
  }
}

function encode(patch: TenantSettingsPatch): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(patch)) {
    if (value === undefined) continue
    out[key] = key === 'branding' && value !== null ? JSON.stringify(value) : value
  }
  return out
}

function decode(row: Record<string, unknown>): TenantSettingsRecord {
  const text = (value: unknown): string | null => (value === null || value === undefined ? null : String(value))
  const branding = row.branding
  return {
    workspace_id: String(row.workspace_id),
    organization_id: String(row.organization_id),
    branding: branding === null || branding === undefined ? null : typeof branding === 'string' ? JSON.parse(branding) : (branding as TenantSettingsRecord['branding']),
    preview_domain: text(row.preview_domain),
    preview_domain_verified_at: text(row.preview_domain_verified_at),
    updated_at: String(row.updated_at),
  }
}
