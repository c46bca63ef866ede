import type { ApiKey } from '../schemas/api-keys.js'
import type { Page } from '../schemas/common.js'
import type { Organization } from '../schemas/organizations.js'
import type { Project } from '../schemas/projects.js'
import type { Workspace } from '../schemas/workspaces.js'
import type { Sandbox, Snapshot } from '../schemas/sandboxes.js'
import type { BackgroundService } from '../schemas/sandbox-services.js'
import type { PreviewToken, ShareToken } from '../schemas/previews.js'
import type { Deployment, Instance, InstanceEvent, RouteChange, Version } from '../schemas/deployments.js'
import type { Environment } from '../schemas/environments.js'
import type { QuotaOverrides } from '../schemas/quotas.js'

// The store as core sees it: typed tables of plain records, every organization-owned
// table reached only through a scope that names the organization. Dialects (SQLite,
// PostgreSQL) implement it and run the same contract suite (test/contract/store.case.ts).

export type ApiKeyRecord = ApiKey & { hash: string }

/** A runtime driver's handle, as stored: which driver, and its own id. */
export interface StoredRef {
  driver: string
  id: string
}

export type SandboxRecord = Omit<Sandbox, 'env_keys' | 'expires_at' | 'previews' | 'allow_internet' | 'disk'> & {
  /** Given at creation, merged into every exec and terminal. */
  env: Record<string, string>
  runtime_ref: StoredRef | null
  /** For a fork: the private image it started from, removed with it. */
  base_ref: StoredRef | null
  destroyed_at: string | null
}

export type SnapshotRecord = Snapshot & { runtime_ref: StoredRef | null }

/** A background service of a sandbox, as stored: started again whenever the sandbox resumes. */
export type BackgroundServiceRecord = Omit<BackgroundService, 'env_keys'> & {
  organization_id: string
  /** Given when it was started, passed again on every restart. */
  env: Record<string, string>
}

/** A preview token as stored: its value is never kept (it is signed, and verified by signature). */
export type PreviewTokenRecord = PreviewToken

export type ShareTokenRecord = Omit<ShareToken, 'has_password'> & {
  /** SHA-256 (hex) of the token value. */
  token_hash: string
  /** `scrypt$N$r$p$salt$hash` (base64url parts), or null without a password. */
  password_hash: string | null
}

/** A tenant's look on the pages the edge renders: only https URLs and hex colours get this far. */
export interface BrandingRecord {
  logo_url: string
  accent_color: string
  support_url: string | null
  /** When it was set. */
  updated_at: string
}

/** Per-workspace settings: one row per workspace that has any. */
export interface TenantSettingsRecord {
  workspace_id: string
  organization_id: string
  branding: BrandingRecord | null
  /** Unique across the platform. */
  preview_domain: string | null
  preview_domain_verified_at: string | null
  updated_at: string
}

export type TenantSettingsPatch = Partial<Omit<TenantSettingsRecord, 'workspace_id' | 'organization_id' | 'updated_at'>> & {
  updated_at: string
}

export type DeploymentRecord = Omit<Deployment, 'url' | 'active_version_id' | 'routes'>

/** A deployment environment of a project: its name and its slug (unique in the project). */
export type EnvironmentRecord = Environment

/** Which version an environment of a deployment serves. */
export interface DeploymentRouteRecord {
  deployment_id: string
  environment: string
  organization_id: string
  active_version_id: string | null
  updated_at: string
}

export type VersionRecord = Omit<Version, 'url'> & {
  /** The build's output, its last part only (the core caps it). */
  logs: string
}

/** An immutable build output, by the sha256 of its tarball in the blob store; never deleted while a version names it. */
export interface ReleaseRecord {
  sha256: string
  kind: 'static' | 'dynamic'
  size_bytes: number
  /** Dynamic: the blob holding the image as an OCI archive (the sha256 is the image digest). */
  archive_sha256?: string | null | undefined
  created_at: string
}

/** A runtime instance as stored: where its container is and where its server listens. */
export type InstanceRecord = Instance & {
  runtime_ref: StoredRef | null
  address: { host: string; port: number } | null
}

export type InstanceEventRecord = InstanceEvent

/** When an env value is needed: while building, while running, or both. */
export type EnvVarPhase = 'build' | 'runtime' | 'both'

/** An env var or secret of a deployment environment, as stored: its value sealed (see core/secret-box.ts), never in the clear. */
export interface EnvVarRecord {
  id: string
  organization_id: string
  deployment_id: string
  environment: string
  key: string
  /** base64: ChaCha20-Poly1305 ciphertext with its 16-byte tag. */
  ciphertext: string
  /** base64 of the 12-byte nonce. */
  nonce: string
  /** Which master key sealed it. */
  key_id: string
  phase: EnvVarPhase
  is_secret: boolean
  created_at: string
  updated_at: string
}

export interface EnvVarsStore {
  /** The deployment's vars, by environment then key; one environment's when given. */
  list(scope: OrgScope, deploymentId: string, environment?: string): Promise<EnvVarRecord[]>
  get(scope: OrgScope, deploymentId: string, environment: string, key: string): Promise<EnvVarRecord | undefined>
  /**
   * Writes every row in one transaction, replacing the row of the same (deployment_id,
   * environment, key) if there is one (its id and created_at are kept): all land or none.
   * Answers the stored rows.
   */
  upsertMany(scope: OrgScope, rows: readonly EnvVarRecord[]): Promise<EnvVarRecord[]>
  delete(scope: OrgScope, deploymentId: string, environment: string, key: string): Promise<boolean>
  /** Removes a deployment's vars (of one environment when given); answers how many. */
  deleteAll(scope: OrgScope, deploymentId: string, environment?: string): Promise<number>
  /** Up to `limit` rows not sealed under `keyId`, by id after `afterId`, across organizations: for re-encryption, never for callers. */
  findNotUnderKey(keyId: string, afterId: string, limit: number): Promise<EnvVarRecord[]>
  /** Replaces a row's sealed value if it is still under `fromKeyId` (a concurrent write wins); answers whether it did. */
  reseal(id: string, fromKeyId: string, sealed: { ciphertext: string; nonce: string; key_id: string }): Promise<boolean>
}

export type RouteChangeRecord = RouteChange

/** A change of an environment's route, as asked for: the store fills in `from_version_id`. */
export type RouteChangeRequest = Omit<RouteChangeRecord, 'from_version_id'>

export interface DeploymentRoutesStore {
  list(scope: OrgScope, deploymentId: string): Promise<DeploymentRouteRecord[]>
  get(scope: OrgScope, deploymentId: string, environment: string): Promise<DeploymentRouteRecord | undefined>
  /** An environment's route across organizations: for the edge, never for callers. */
  findUnscoped(deploymentId: string, environment: string): Promise<DeploymentRouteRecord | undefined>
  /** Every route that serves a version, across organizations: for the instance reconciler, never for callers. */
  findAllActive(): Promise<DeploymentRouteRecord[]>
  /**
   * Points the environment at `to_version_id` and records the change (from the version it
   * served), in one transaction; changes of one deployment's routes are serialised. The
   * target must be a `ready` version of the deployment (else MiosaError('conflict')). With
   * `onlyIfNewer`, nothing changes (undefined) when the route already serves a version of a
   * higher number: a slow publish never replaces a later one.
   */
  repoint(scope: OrgScope, change: RouteChangeRequest, opts?: { onlyIfNewer?: boolean }): Promise<RouteChangeRecord | undefined>
  /** Removes the environment's route of every deployment of the project (the environment is deleted); answers how many. */
  deleteForEnvironment(scope: OrgScope, projectId: string, environment: string): Promise<number>
}

/** What an organization (or one of its workspaces) holds now, counted from the tables that hold it. */
export interface QuotaUsageRecord {
  /** Sandboxes creating, running or snapshotting. */
  running_sandboxes: number
  /** Sandboxes in any state but destroyed and error. */
  sandboxes: number
  /** vCPUs and MiB of the running sandboxes. */
  sandbox_vcpus: number
  sandbox_memory_mb: number
  /** Runtime instances with a container (any state). */
  instances: number
  /** Instances asked for: each deployment's count times its environments that serve a dynamic version. */
  desired_instances: number
  /** Versions in status building. */
  builds: number
  deployments: number
  /** Bytes of ready snapshots. */
  snapshot_bytes: number
  /** Bytes of the distinct releases the versions reference. */
  release_bytes: number
}

/** What `usage` counts, table by table. */
export type QuotaUsagePart = 'sandboxes' | 'instances' | 'builds' | 'deployments' | 'storage'

export interface QuotaStore {
  /** The limits the organization (workspaceId null) or the workspace overrides; empty when none. */
  getLimits(scope: OrgScope, workspaceId: string | null): Promise<QuotaOverrides>
  /** Replaces the overrides of the organization (workspaceId null) or the workspace. */
  setLimits(scope: OrgScope, workspaceId: string | null, limits: QuotaOverrides, updatedAt: string): Promise<void>
  /** Removes a workspace's overrides (the workspace is being deleted). */
  deleteWorkspaceLimits(scope: OrgScope, workspaceId: string): Promise<void>
  /** The overrides of the organization and of one of its workspaces, in one read. */
  getLimitsOf(scope: OrgScope, workspaceId: string): Promise<{ organization: QuotaOverrides; workspace: QuotaOverrides }>
  /**
   * Use of the whole organization, or of one workspace. With `parts`, only those are
   * counted (the others answer 0): a check counts only what its demand touches.
   */
  usage(scope: OrgScope, workspaceId?: string, parts?: ReadonlySet<QuotaUsagePart>): Promise<QuotaUsageRecord>
}

/** Scope of a query on an organization's table: the caller's organization, always. */
export interface OrgScope {
  organization_id: string
}

/** Scope of a platform-level table (organizations): root only, nothing to narrow. */
export type PlatformScope = Record<string, never>

export interface ListQuery<T> {
  limit: number
  cursor?: string | undefined
  /** Equality filters on columns; undefined values are ignored. */
  where?: { [K in keyof T]?: T[K] | undefined }
  /** `metadata[key] = value` filters, all of which must match. */
  metadata?: Record<string, string> | undefined
}

export type Patch<T> = Partial<Omit<T, 'id' | 'organization_id' | 'created_at'>>

export interface Table<T extends { id: string }, S> {
  /** Inserts the row; a unique-constraint clash throws MiosaError('conflict') naming the field. */
  insert(row: T): Promise<T>
  get(scope: S, id: string): Promise<T | undefined>
  /** Newest first; `next_cursor` continues after the last row returned. */
  list(scope: S, query: ListQuery<T>): Promise<Page<T>>
  /** Rows matching `where`, in any order: for lookups and existence checks, not listing. */
  find(scope: S, where: { [K in keyof T]?: T[K] }, limit?: number): Promise<T[]>
  update(scope: S, id: string, patch: Patch<T>): Promise<T | undefined>
  delete(scope: S, id: string): Promise<boolean>
}

export interface TenantSettingsStore {
  get(scope: OrgScope, workspaceId: string): Promise<TenantSettingsRecord | undefined>
  /**
   * Writes the given fields of the workspace's settings, creating its row (other fields
   * null) when it has none; fields not in `patch` keep their values. A preview domain taken
   * by another workspace throws MiosaError('conflict') naming preview_domain. A row of
   * another organization is left alone and answers undefined.
   */
  upsert(scope: OrgScope, workspaceId: string, patch: TenantSettingsPatch): Promise<TenantSettingsRecord | undefined>
  delete(scope: OrgScope, workspaceId: string): Promise<boolean>
  /** The workspace a preview domain belongs to, across organizations: for the edge. */
  findByPreviewDomain(domain: string): Promise<TenantSettingsRecord | undefined>
  /** A workspace's settings, across organizations: for the edge's pages, never for callers. */
  findByWorkspace(workspaceId: string): Promise<TenantSettingsRecord | undefined>
}

export interface Store {
  readonly dialect: 'sqlite' | 'postgres'
  readonly organizations: Table<Organization, PlatformScope>
  readonly apiKeys: Table<ApiKeyRecord, OrgScope> & {
    /** The one unscoped lookup: authentication, by the key's hash. */
    findByHash(hash: string): Promise<ApiKeyRecord | undefined>
  }
  readonly workspaces: Table<Workspace, OrgScope>
  readonly projects: Table<Project, OrgScope>
  readonly environments: Table<EnvironmentRecord, OrgScope> & {
    /** A project's environment by slug, across organizations: for the edge, never for callers. */
    findBySlugUnscoped(projectId: string, slug: string): Promise<EnvironmentRecord | undefined>
    /** Removes every environment of the project (the project is being deleted); answers how many. */
    deleteByProject(scope: OrgScope, projectId: string): Promise<number>
  }
  readonly sandboxes: Table<SandboxRecord, OrgScope> & {
    /** Sandboxes of every organization in these states: for the reaper and re-adoption, never for callers. */
    findInStates(states: readonly SandboxRecord['state'][]): Promise<SandboxRecord[]>
    /** Sandboxes by id across organizations: for the platform's own loops (activity, re-adoption), never for callers. */
    findByIds(ids: readonly string[]): Promise<SandboxRecord[]>
    /** The sandbox a preview hostname names, across organizations, when it is in one of `states`: for the edge, never for callers. */
    findBySlug(slug: string, states: readonly SandboxRecord['state'][]): Promise<SandboxRecord | undefined>
  }
  readonly snapshots: Table<SnapshotRecord, OrgScope>
  /** Background services of sandboxes; `find` by sandbox_id lists one sandbox's. */
  readonly backgroundServices: Table<BackgroundServiceRecord, OrgScope>
  readonly previewTokens: Table<PreviewTokenRecord, OrgScope> & {
    /** A token by id across organizations: for the edge checking a signed value it was shown, never for callers. */
    findById(id: string): Promise<PreviewTokenRecord | undefined>
  }
  readonly shareTokens: Table<ShareTokenRecord, OrgScope> & {
    /** The edge's lookup of a share link, by the SHA-256 of its value. */
    findByHash(hash: string): Promise<ShareTokenRecord | undefined>
    /** A token by id across organizations: for the edge re-checking an access cookie, never for callers. */
    findById(id: string): Promise<ShareTokenRecord | undefined>
  }
  readonly tenantSettings: TenantSettingsStore
  readonly deployments: Table<DeploymentRecord, OrgScope> & {
    /** The deployment a managed hostname names, across organizations: for the edge, never for callers. */
    findByHost(workspaceSlug: string, deploymentSlug: string): Promise<DeploymentRecord | undefined>
    /** Deployments by id across organizations: for the instance reconciler, never for callers. */
    findByIds(ids: readonly string[]): Promise<DeploymentRecord[]>
  }
  readonly deploymentRoutes: DeploymentRoutesStore
  readonly versions: Table<VersionRecord, OrgScope> & {
    /**
     * Inserts the version numbered one past the deployment's last, in one transaction with
     * taking that number: concurrent publishes get distinct, consecutive numbers. An unknown
     * deployment (in the scope) throws not_found.
     */
    insertNext(row: Omit<VersionRecord, 'version_number'>): Promise<VersionRecord>
    /** Versions of every organization in these statuses: for recovery after a restart, never for callers. */
    findInStatuses(statuses: readonly VersionRecord['status'][]): Promise<VersionRecord[]>
    /** A version by id across organizations: for the edge, never for callers. */
    findById(id: string): Promise<VersionRecord | undefined>
  }
  readonly releases: {
    /** Records the release unless it is known already (the same output twice is one release); answers the stored row. */
    put(row: ReleaseRecord): Promise<ReleaseRecord>
    get(sha256: string): Promise<ReleaseRecord | undefined>
    /** Records where a dynamic release's OCI archive is kept (set once; a later call changes nothing). */
    setArchive(sha256: string, archiveSha256: string): Promise<void>
    /** Dynamic releases whose archive is not stored yet (an export a restart interrupted). */
    findUnarchived(): Promise<ReleaseRecord[]>
  }
  readonly routeChanges: Table<RouteChangeRecord, OrgScope>
  readonly instances: Table<InstanceRecord, OrgScope> & {
    /** Every instance of every organization: for the reconciler, never for callers. */
    findAllUnscoped(): Promise<InstanceRecord[]>
  }
  readonly instanceEvents: Table<InstanceEventRecord, OrgScope>
  readonly envVars: EnvVarsStore
  readonly quotas: QuotaStore
  readonly settings: {
    get(key: string): Promise<string | undefined>
    set(key: string, value: string): Promise<void>
    /** Stores `value` unless the key has one already; answers the value stored either way (first writer wins). */
    setIfAbsent(key: string, value: string): Promise<string>
  }
  /** Runs `fn` atomically: every write inside lands, or none does. Nested calls join the outer one. */
  transaction<R>(fn: (tx: Store) => Promise<R>): Promise<R>
  /** Brings the schema to the latest migration. */
  migrate(): Promise<void>
  /** Throws when the database cannot answer a trivial query. */
  ping(): Promise<void>
  close(): Promise<void>
}
