import type { EnvPhaseInput, EnvVar, EnvVarDeleted, EnvVarList, EnvVarsSetResult, RotateMasterKeyResult } from '../schemas/env-vars.js'
import { ENV_BULK_MAX, ENV_KEY_MAX_LENGTH, ENV_KEY_PATTERN, ENV_VALUE_MAX_BYTES, SECRET_PREVIEW } from '../schemas/env-vars.js'
import type { DeploymentRecord, EnvVarRecord, OrgScope, Store } from '../store/store.js'
import { nowIso } from './clock.js'
import type { EnvPhase, EnvironmentValues, ResolvedEnv } from './environment-values.js'
import { MiosaError, notFound } from './errors.js'
import { newId } from './ids.js'
import { Keyring, generateMasterKey, parseMasterKey } from './secret-box.js'
import type { MasterKeySource } from './secret-box.js'

// Env vars and secrets of deployment environments: validated, sealed (secret-box.ts) and
// stored; listed as previews; decrypted only by `resolve`, on the way into a build, a runtime
// instance or a sandbox. Values never go into an error message or a log line.
//
// The master key comes from a MasterKeySource (the data-dir file or MIOSA_MASTER_KEY). A
// rotation makes a new key current at once (new writes use it, old rows still open with the
// old key), re-seals every row in batches, and only then persists the new key alone.

/** Keys the platform sets itself. */
const RESERVED = /^(MIOSA_.*|PORT)$/i
/** Frameworks inline these into client bundles at build time. */
const BAKED_PREFIX = /^(NEXT_PUBLIC_|VITE_)/
const RESEAL_BATCH = 100

export interface EnvVarInput {
  key: string
  value: string
  is_secret?: boolean | undefined
  phase?: EnvPhaseInput | undefined
}

/** The environment check of environments.ts (EnvironmentService.ensure): an unknown environment is a 4xx before anything is written. */
export interface EnvironmentCheck {
  ensure(scope: OrgScope, deployment: Pick<DeploymentRecord, 'id' | 'slug' | 'project_id'>, environment: string): Promise<unknown>
}

export class EnvVarService implements EnvironmentValues {
  private keyring: Promise<Keyring> | undefined
  private rotating = false

  constructor(
    private readonly deps: {
      store: Store
      keys: MasterKeySource
      /** Hook: without one, any well-formed environment name is accepted (the schema checks the name). */
      environments?: EnvironmentCheck | undefined
    },
  ) {}

  /** Loads the master key (making it on first start); the platform calls this at start so a bad key fails fast. */
  async loadKeys(): Promise<{ key_id: string }> {
    return { key_id: (await this.ring()).currentKeyId }
  }

  async set(organizationId: string, deploymentId: string, input: EnvVarInput & { environment: string }): Promise<EnvVarsSetResult> {
    return this.setMany(organizationId, deploymentId, { environment: input.environment, vars: [input] }, '')
  }

  /** Writes every var or, on any invalid one, none. `fieldPrefix` names vars in errors (`vars.2.key`). */
  async setMany(organizationId: string, deploymentId: string, input: { environment: string; vars: readonly EnvVarInput[] }, fieldPrefix = 'vars.'): Promise<EnvVarsSetResult> {
    const scope = { organization_id: organizationId }
    const deployment = await this.deploymentOf(scope, deploymentId, input.environment)
    if (input.vars.length === 0 || input.vars.length > ENV_BULK_MAX) {
      throw new MiosaError('invalid', `vars: give 1 to ${ENV_BULK_MAX} vars`, { details: { field: 'vars' } })
    }
    const seen = new Set<string>()
    input.vars.forEach((v, i) => {
      const at = fieldPrefix === '' ? '' : `${fieldPrefix}${i}.`
      validateKey(v.key, `${at}key`)
      if (seen.has(v.key)) throw new MiosaError('invalid', `${at}key: ${v.key} is given twice`, { details: { field: `${at}key` } })
      seen.add(v.key)
      const bytes = Buffer.byteLength(v.value, 'utf8')
      if (bytes > ENV_VALUE_MAX_BYTES) {
        throw new MiosaError('invalid', `${at}value: the value of ${v.key} is ${bytes} bytes, more than the ${ENV_VALUE_MAX_BYTES}-byte limit`, {
          details: { field: `${at}value`, limit_bytes: ENV_VALUE_MAX_BYTES },
        })
      }
      if (v.value.includes('\0')) throw new MiosaError('invalid', `${at}value: the value of ${v.key} contains a NUL character`, { details: { field: `${at}value` } })
    })
    const ring = await this.ring()
    const now = nowIso()
    const rows: EnvVarRecord[] = input.vars.map((v) => {
      const binding = { deployment_id: deployment.id, environment: input.environment, key: v.key }
      return {
        id: newId('envVar'),
        organization_id: organizationId,
        ...binding,
        ...ring.seal(v.value, binding),
        phase: v.phase ?? defaultPhase(v.key),
        is_secret: v.is_secret ?? false,
        created_at: now,
        updated_at: now,
      }
    })
    const stored = await this.deps.store.envVars.upsertMany(scope, rows)
    const values = new Map(input.vars.map((v) => [v.key, v.value]))
    const data = stored.map((r) => entryOf(r, values.get(r.key)))
    return { deployment_id: deployment.id, environment: input.environment, data, ...restartOf(deployment, input.environment) }
  }

  /** Previews of the deployment's vars; with `reveal`, the raw values of those that are not secrets (never a secret's). */
  async list(organizationId: string, deploymentId: string, opts: { environment?: string | undefined; reveal?: boolean | undefined } = {}): Promise<EnvVarList> {
    const scope = { organization_id: organizationId }
    const deployment = await this.deploymentOf(scope, deploymentId, opts.environment)
    const rows = await this.deps.store.envVars.list(scope, deployment.id, opts.environment)
    const ring = await this.ring()
    // Plain values are opened for their preview; a secret's is never opened here.
    const data = rows.map((row) => {
      if (row.is_secret) return entryOf(row)
      const value = ring.open(row, row)
      return entryOf(row, value, opts.reveal === true)
    })
    return { deployment_id: deployment.id, data }
  }

  async unset(organizationId: string, deploymentId: string, environment: string, key: string): Promise<EnvVarDeleted> {
    const scope = { organization_id: organizationId }
    const deployment = await this.deploymentOf(scope, deploymentId, environment)
    if (!(await this.deps.store.envVars.delete(scope, deployment.id, environment, key))) {
      throw new MiosaError('not_found', `env var ${key} not found in environment ${environment} of deployment ${deployment.slug}`, {
        details: { kind: 'env var', id: key, field: 'key' },
      })
    }
    return { deployment_id: deployment.id, environment, key, deleted: true, ...restartOf(deployment, environment) }
  }

  /** What a build (phase build) or an instance or sandbox (phase runtime) of the environment gets; values marked `both` are in each. */
  async resolve(scope: OrgScope, deploymentId: string, environment: string, phase: EnvPhase): Promise<ResolvedEnv> {
    const rows = await this.deps.store.envVars.list(scope, deploymentId, environment)
    const ring = await this.ring()
    const env: Record<string, string> = {}
    const secrets: string[] = []
    for (const row of rows) {
      if (row.phase !== phase && row.phase !== 'both') continue
      const value = ring.open(row, row)
      env[row.key] = value
      if (row.is_secret && value !== '') secrets.push(value)
    }
    return { env, secrets }
  }

  /**
   * Re-seals every value under a new master key (given, or made here) without downtime: the
   * new key seals new writes at once and the old one keeps opening old rows until every row
   * is re-sealed; then the new key alone is kept. A file source holds both keys while the
   * rotation runs, so one that is interrupted finishes on the next rotation.
   */
  async rotateMasterKey(input: { new_key?: string | undefined } = {}): Promise<RotateMasterKeyResult> {
    if (this.deps.keys.kind === 'env' && input.new_key === undefined) {
      throw new MiosaError(
        'invalid',
        'new_key: the master key comes from MIOSA_MASTER_KEY, so give the new key (miosa admin rotate-master-key --new-key-file PATH writes one to PATH) and set MIOSA_MASTER_KEY to it before the next restart',
        { details: { field: 'new_key' } },
      )
    }
    if (this.rotating) throw new MiosaError('conflict', 'a master key rotation is already running')
    this.rotating = true
    try {
      const ring = await this.ring()
      const fresh = input.new_key === undefined ? generateMasterKey() : parseMasterKey(input.new_key, 'new_key')
      const keyId = ring.makeCurrent(fresh)
      if (this.deps.keys.kind === 'file') await this.deps.keys.save(ring.exportKeys())
      let reEncrypted = 0
      const failed: string[] = []
      let after = ''
      for (;;) {
        const batch = await this.deps.store.envVars.findNotUnderKey(keyId, after, RESEAL_BATCH)
        if (batch.length === 0) break
        for (const row of batch) {
          after = row.id
          let value: string
          try {
            value = ring.open(row, row)
          } catch {
            failed.push(row.id)
            continue
          }
          if (await this.deps.store.envVars.reseal(row.id, row.key_id, ring.seal(value, row))) reEncrypted++
        }
      }
      if (failed.length > 0) {
        throw new MiosaError(
          'conflict',
          `${failed.length} value(s) cannot be decrypted with any key this platform holds, so the old key is kept: set them again or unset them, then rotate again` +
            (this.deps.keys.kind === 'env' ? ' (until then, MIOSA_MASTER_KEY must hold the new key and the old one: "new,old")' : ''),
          { details: { env_var_ids: failed } },
        )
      }
      ring.dropOlder()
      if (this.deps.keys.kind === 'file') await this.deps.keys.save(ring.exportKeys())
      return {
        re_encrypted: reEncrypted,
        key_id: keyId,
        key_source: this.deps.keys.kind,
        message:
          this.deps.keys.kind === 'file'
            ? 'every value is sealed under the new key; the key file in the data dir now holds it alone'
            : 'every value is sealed under the new key: set MIOSA_MASTER_KEY to it before the next restart (the old key no longer decrypts anything)',
      }
    } finally {
      this.rotating = false
    }
  }

  private async deploymentOf(scope: OrgScope, deploymentId: string, environment: string | undefined): Promise<DeploymentRecord> {
    const deployment = await this.deps.store.deployments.get(scope, deploymentId)
    if (deployment === undefined) throw notFound('deployment', deploymentId)
    if (environment !== undefined) await this.deps.environments?.ensure(scope, deployment, environment)
    return deployment
  }

  private ring(): Promise<Keyring> {
    return (this.keyring ??= this.deps.keys.load().then(
      ([current, ...older]) => {
        if (current === undefined) throw new MiosaError('internal', 'the master key source answered no key')
        return new Keyring(current, older)
      },
      (error: unknown) => {
        this.keyring = undefined
        throw error
      },
    ))
  }
}

function validateKey(key: string, field: string): void {
  if (key.length === 0 || key.length > ENV_KEY_MAX_LENGTH || !ENV_KEY_PATTERN.test(key)) {
    throw new MiosaError('invalid', `${field}: must be an environment variable name (letters, digits and _, not starting with a digit, at most ${ENV_KEY_MAX_LENGTH})`, {
      details: { field },
    })
  }
  if (RESERVED.test(key)) {
    throw new MiosaError('invalid', `${field}: ${key} is reserved (the platform sets MIOSA_* and PORT itself)`, { details: { field } })
  }
}

function defaultPhase(key: string): EnvPhaseInput {
  return BAKED_PREFIX.test(key) ? 'build' : 'runtime'
}

/** First 4 characters (not UTF-16 halves) then …; a secret is always ••••. */
export function previewOf(value: string): string {
  return `${Array.from(value).slice(0, 4).join('')}…`
}

function entryOf(row: EnvVarRecord, value?: string, reveal = false): EnvVar {
  return {
    id: row.id,
    deployment_id: row.deployment_id,
    environment: row.environment,
    key: row.key,
    phase: row.phase,
    is_secret: row.is_secret,
    baked: row.phase !== 'runtime' && BAKED_PREFIX.test(row.key),
    preview: row.is_secret || value === undefined ? (row.is_secret ? SECRET_PREVIEW : '…') : previewOf(value),
    ...(reveal && !row.is_secret && value !== undefined ? { value } : {}),
    key_id: row.key_id,
    created_at: row.created_at,
    updated_at: row.updated_at,
  }
}

function restartOf(deployment: DeploymentRecord, environment: string): { restart_required: true; restart_command: string } {
  return { restart_required: true, restart_command: `miosa restart ${deployment.slug} --env ${environment}` }
}
