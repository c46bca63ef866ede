import { sql } from 'kysely'
import type { Kysely, SelectQueryBuilder } from 'kysely'
import { MiosaError } from '../../core/errors.js'
import type { Page } from '../../schemas/common.js'
import type { ListQuery, Patch, Table } from '../store.js'
import { translateConstraintError } from './constraint-errors.js'

// One table implementation for every resource: the spec names its columns, which of
// them hold JSON, and which columns a scope may narrow on. Identifiers only ever come
// from the spec, values always travel as parameters.

// Rows are dynamic here; the typed surface is the Table<T, S> interface this class implements.
export type AnyDatabase = Record<string, Record<string, unknown>>
type AnySelect = SelectQueryBuilder<AnyDatabase, string, Record<string, unknown>>

export interface TableSpec<T> {
  name: string
  /** Singular noun for messages: "workspace ws_… not found". */
  kind: string
  columns: readonly (keyof T & string)[]
  jsonColumns?: readonly (keyof T & string)[]
  /** Stored as 0/1 integers: SQLite has no boolean type. */
  booleanColumns?: readonly (keyof T & string)[]
  /** bigint columns, which PostgreSQL's driver hands back as strings. */
  bigintColumns?: readonly (keyof T & string)[]
}

export type Dialect = 'sqlite' | 'postgres'

export class KyselyTable<T extends { id: string }, S extends object> implements Table<T, S> {
  constructor(
    private readonly db: Kysely<AnyDatabase>,
    private readonly dialect: Dialect,
    private readonly spec: TableSpec<T>,
  ) {}

  async insert(row: T): Promise<T> {
    try {
      await this.db.insertInto(this.spec.name).values(this.encode(row)).execute()
    } catch (error) {
      throw translateConstraintError(error, this.spec.kind)
    }
    return row
  }

  async get(scope: S, id: string): Promise<T | undefined> {
    const row = await this.select(scope).where('id', '=', id).executeTakeFirst()
    return row === undefined ? undefined : this.decode(row)
  }

  async find(scope: S, where: { [K in keyof T]?: T[K] }, limit = 1000): Promise<T[]> {
    const rows = await this.filtered(this.select(scope), where).limit(limit).execute()
    return rows.map((row) => this.decode(row))
  }

  async list(scope: S, query: ListQuery<T>): Promise<Page<T>> {
    let q = this.filtered(this.select(scope), query.where ?? {})
    for (const [key, value] of Object.entries(query.metadata ?? {})) q = q.where(this.metadataEquals(key, value))
    if (query.cursor !== undefined) {
      const [createdAt, id] = decodeCursor(query.cursor)
      q = q.where((eb) =>
        eb.or([eb('created_at', '<', createdAt), eb.and([eb('created_at', '=', createdAt), eb('id', '<', id)])]),
      )
    }
    const rows = await q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(query.limit + 1).execute()
    const data = rows.slice(0, query.limit).map((row) => this.decode(row))
    const last = data.at(-1) as (T & { created_at: string }) | undefined
    const nextCursor = rows.length > query.limit && last !== undefined ? encodeCursor(last.created_at, last.id) : null
    return { data, next_cursor: nextCursor }
  }

  async update(scope: S, id: string, patch: Patch<T>): Promise<T | undefined> {
    const values = this.encode(patch)
    if (Object.keys(values).length > 0) {
      let q = this.db.updateTable(this.spec.name).set(values).where('id', '=', id)
      for (const [column, value] of Object.entries(scope)) q = q.where(this.column(column), '=', value)
      try {
        await q.execute()
      } catch (error) {
        throw translateConstraintError(error, this.spec.kind)
      }
    }
    return this.get(scope, id)
  }

  async delete(scope: S, id: string): Promise<boolean> {
    let q = this.db.deleteFrom(this.spec.name).where('id', '=', id)
    for (const [column, value] of Object.entries(scope)) q = q.where(this.column(column), '=', value)
    try {
      const result = await q.executeTakeFirst()
      return Number(result.numDeletedRows) > 0
    } catch (error) {
      throw translateConstraintError(error, this.spec.kind)
    }
  }

  /** Rows by an unscoped column: for the few lookups that precede knowing the organization. */
  async findUnscoped(column: keyof T & string, value: string): Promise<T | undefined> {
    const row = await this.db
      .selectFrom(this.spec.name)
      .selectAll()
      .where(this.column(column), '=', value)
      .executeTakeFirst()
    return row === undefined ? undefined : this.decode(row)
  }

  /** Rows matching every column of `where`, across organizations: for the edge and platform loops, never for callers. */
  async findWhereUnscoped(where: { [K in keyof T]?: T[K] }, limit = 1000): Promise<T[]> {
    const rows = await this.filtered(this.db.selectFrom(this.spec.name).selectAll() as AnySelect, where).limit(limit).execute()
    return rows.map((row) => this.decode(row))
  }

  /** Rows whose column is one of `values`, across organizations: for platform loops, never for callers. */
  async findInUnscoped(column: keyof T & string, values: readonly unknown[]): Promise<T[]> {
    if (values.length === 0) return []
    const rows = await this.db
      .selectFrom(this.spec.name)
      .selectAll()
      .where(this.column(column), 'in', values)
      .execute()
    return rows.map((row) => this.decode(row))
  }

  private select(scope: S): AnySelect {
    let q = this.db.selectFrom(this.spec.name).selectAll() as AnySelect
    for (const [column, value] of Object.entries(scope)) q = q.where(this.column(column), '=', value)
    return q
  }

  private filtered(q: AnySelect, where: Partial<Record<string, unknown>>): AnySelect {
    for (const [column, value] of Object.entries(where)) {
      if (value === undefined) continue
      q = value === null ? q.where(this.column(column), 'is', null) : q.where(this.column(column), '=', value)
    }
    return q
  }

  private metadataEquals(key: string, value: string) {
    return this.dialect === 'postgres'
      ? sql<boolean>`(metadata::jsonb ->> ${key}) = ${value}`
      : sql<boolean>`exists (select 1 from json_each(metadata) where json_each.key = ${key} and json_each.value = ${value})`
  }

  private column(name: string): string {
    if (!(this.spec.columns as readonly string[]).includes(name)) {
      throw new MiosaError('internal', `${this.spec.name} has no column ${name}`)
    }
    return name
  }

  private encode(values: object): Record<string, unknown> {
    const out: Record<string, unknown> = {}
    for (const [key, value] of Object.entries(values)) {
      if (value === undefined) continue
      this.column(key)
      const column = key as keyof T & string
      if (this.spec.jsonColumns?.includes(column)) out[key] = value === null ? null : JSON.stringify(value)
      else if (this.spec.booleanColumns?.includes(column)) out[key] = value === null ? null : value ? 1 : 0
      else out[key] = value
    }
    return out
  }

  private decode(row: Record<string, unknown>): T {
    const out: Record<string, unknown> = {}
    for (const column of this.spec.columns) {
      const value = row[column]
      if (value === null || value === undefined) out[column] = null
      else if (this.spec.jsonColumns?.includes(column)) out[column] = typeof value === 'string' ? JSON.parse(value) : value
      else if (this.spec.booleanColumns?.includes(column)) out[column] = Boolean(Number(value))
      else if (this.spec.bigintColumns?.includes(column)) out[column] = Number(value)
      else out[column] = value
    }
    return out as T
  }
}

function encodeCursor(createdAt: string, id: string): string {
  return Buffer.from(JSON.stringify([createdAt, id])).toString('base64url')
}

function decodeCursor(cursor: string): [string, string] {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
    if (Array.isArray(value) && value.length === 2 && value.every((part) => typeof part === 'string')) {
      return value as [string, string]
    }
  } catch {
    // fall through to the error below
  }
  throw new MiosaError('invalid', 'cursor: not a cursor this server issued', { details: { field: 'cursor' } })
}
