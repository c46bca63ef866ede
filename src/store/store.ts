import type { ApiKey } from '../schemas/api-keys.js'
import type { Page } from '../schemas/common.js'
import type { Organization } from '../schemas/organizations.js'
import type { Project } from '../schemas/projects.js'
import type { Workspace } from '../schemas/workspaces.js'
import type { Sandbox, Snapshot } from '../schemas/sandboxes.js'

// The store as core sees it: typed tables of plain records, every organization-owned
// table reached only through a scope that names the organization. Dialects (SQLite,
// PostgreSQL) implement it and run the same contract suite (test/contract/store.case.ts).

export type ApiKeyRecord = ApiKey & { hash: string }

/** A runtime driver's handle, as stored: which driver, and its own id. */
export interface StoredRef {
  driver: string
  id: string
}

export type SandboxRecord = Omit<Sandbox, 'env_keys' | 'expires_at'> & {
  /** Given at creation, merged into every exec and terminal. */
  env: Record<string, string>
  runtime_ref: StoredRef | null
  /** For a fork: the private image it started from, removed with it. */
  base_ref: StoredRef | null
  destroyed_at: string | null
}

export type SnapshotRecord = Snapshot & { runtime_ref: StoredRef | null }

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

export interface Store {
  readonly dialect: 'sqlite' | 'postgres'
  readonly organizations: Table<Organization, PlatformScope>
  readonly apiKeys: Table<ApiKeyRecord, OrgScope> & {
    /** The one unscoped lookup: authentication, by the key's hash. */
    findByHash(hash: string): Promise<ApiKeyRecord | undefined>
  }
  readonly workspaces: Table<Workspace, OrgScope>
  readonly projects: Table<Project, OrgScope>
  readonly sandboxes: Table<SandboxRecord, OrgScope> & {
    /** Sandboxes of every organization in these states: for the reaper and re-adoption, never for callers. */
    findInStates(states: readonly SandboxRecord['state'][]): Promise<SandboxRecord[]>
    /** Sandboxes by id across organizations: for the platform's own loops (activity, re-adoption), never for callers. */
    findByIds(ids: readonly string[]): Promise<SandboxRecord[]>
  }
  readonly snapshots: Table<SnapshotRecord, OrgScope>
  readonly settings: {
    get(key: string): Promise<string | undefined>
    set(key: string, value: string): Promise<void>
  }
  /** Runs `fn` atomically: every write inside lands, or none does. Nested calls join the outer one. */
  transaction<R>(fn: (tx: Store) => Promise<R>): Promise<R>
  /** Brings the schema to the latest migration. */
  migrate(): Promise<void>
  /** Throws when the database cannot answer a trivial query. */
  ping(): Promise<void>
  close(): Promise<void>
}
