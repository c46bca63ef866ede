import type { Kysely } from 'kysely'
import type { EnvVarRecord, EnvVarsStore, OrgScope } from '../store.js'
import { translateConstraintError } from './constraint-errors.js'
import type { AnyDatabase } from './table.js'

// Env vars of deployment environments, keyed by (deployment, environment, key). A bulk write
// is one transaction of upserts, so a set of values lands whole or not at all.

const TABLE = 'env_vars'
const KIND = 'env var'

export class EnvVarsTable implements EnvVarsStore {
  constructor(private readonly db: Kysely<AnyDatabase>) {}

  async list(scope: OrgScope, deploymentId: string, environment?: string): Promise<EnvVarRecord[]> {
    let q = this.db.selectFrom(TABLE).selectAll().where('organization_id', '=', scope.organization_id).where('deployment_id', '=', deploymentId)
    if (environment !== undefined) q = q.where('environment', '=', environment)
    const rows = await q.orderBy('environment').orderBy('key').execute()
    return rows.map(decode)
  }

  async get(scope: OrgScope, deploymentId: string, environment: string, key: string): Promise<EnvVarRecord | undefined> {
    const row = await this.db
      .selectFrom(TABLE)
      .selectAll()
      .where('organization_id', '=', scope.organization_id)
      .where('deployment_id', '=', deploymentId)
      .where('environment', '=', environment)
      .where('key', '=', key)
      .executeTakeFirst()
    return row === undefined ? undefined : decode(row)
  }

  async upsertMany(scope: OrgScope, rows: readonly EnvVarRecord[]): Promise<EnvVarRecord[]> {
    if (rows.length === 0) return []
    const write = async (trx: Kysely<AnyDatabase>) => {
      const stored: EnvVarRecord[] = []
      for (const row of rows) {
        const values = { ...row, organization_id: scope.organization_id, is_secret: row.is_secret ? 1 : 0 }
        await trx
          .insertInto(TABLE)
          .values(values)
          .onConflict((oc) =>
            oc
              .columns(['deployment_id', 'environment', 'key'])
              .doUpdateSet({
                ciphertext: values.ciphertext,
                nonce: values.nonce,
                key_id: values.key_id,
                phase: values.phase,
                is_secret: values.is_secret,
                updated_at: values.updated_at,
              })
              // Never another organization's row, whatever deployment id was passed.
              .where(`${TABLE}.organization_id`, '=', scope.organization_id),
          )
          .execute()
        const got = await new EnvVarsTable(trx).get(scope, row.deployment_id, row.environment, row.key)
        if (got === undefined) throw new Error(`env var ${row.key} of deployment ${row.deployment_id} belongs to another organization`)
        stored.push(got)
      }
      return stored
    }
    try {
      return this.db.isTransaction ? await write(this.db) : await this.db.transaction().execute(write)
    } catch (error) {
      throw translateConstraintError(error, KIND)
    }
  }

  async delete(scope: OrgScope, deploymentId: string, environment: string, key: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom(TABLE)
      .where('organization_id', '=', scope.organization_id)
      .where('deployment_id', '=', deploymentId)
      .where('environment', '=', environment)
      .where('key', '=', key)
      .executeTakeFirst()
    return Number(result.numDeletedRows) > 0
  }

  async deleteAll(scope: OrgScope, deploymentId: string, environment?: string): Promise<number> {
    let q = this.db.deleteFrom(TABLE).where('organization_id', '=', scope.organization_id).where('deployment_id', '=', deploymentId)
    if (environment !== undefined) q = q.where('environment', '=', environment)
    const result = await q.executeTakeFirst()
    return Number(result.numDeletedRows)
  }

  async findNotUnderKey(keyId: string, afterId: string, limit: number): Promise<EnvVarRecord[]> {
    const rows = await this.db
      .selectFrom(TABLE)
      .selectAll()
      .where('key_id', '!=', keyId)
      .where('id', '>', afterId)
      .orderBy('id')
      .limit(limit)
      .execute()
    return rows.map(decode)
  }

  async reseal(id: string, fromKeyId: string, sealed: { ciphertext: string; nonce: string; key_id: string }): Promise<boolean> {
    const result = await this.db
      .updateTable(TABLE)
      .set({ ciphertext: sealed.ciphertext, nonce: sealed.nonce, key_id: sealed.key_id })
      .where('id', '=', id)
      .where('key_id', '=', fromKeyId)
      .executeTakeFirst()
    return Number(result.numUpdatedRows) > 0
  }
}

function decode(row: Record<string, unknown>): EnvVarRecord {
  return {
    id: String(row.id),
    organization_id: String(row.organization_id),
    deployment_id: String(row.deployment_id),
    environment: String(row.environment),
    key: String(row.key),
    ciphertext: String(row.ciphertext),
    nonce: String(row.nonce),
    key_id: String(row.key_id),
    phase: row.phase as EnvVarRecord['phase'],
    is_secret: Boolean(Number(row.is_secret)),
    created_at: String(row.created_at),
    updated_at: String(row.updated_at),
  }
}
