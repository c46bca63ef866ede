import { MiosaError } from '../../core/errors.js'

// SQLite and PostgreSQL report constraint violations differently; core sees one
// MiosaError('conflict') naming the field either way.

interface DriverError {
  code?: unknown
  message?: unknown
  constraint?: unknown
  table?: unknown
}

export function translateConstraintError(error: unknown, kind: string): unknown {
  if (typeof error !== 'object' || error === null) return error
  const { code, message, constraint, table } = error as DriverError
  if (code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
    const field = uniqueField(
      typeof constraint === 'string' ? constraint : undefined,
      typeof table === 'string' ? table : undefined,
      String(message),
    )
    return new MiosaError('conflict', `a ${kind} with this ${field} already exists`, {
      details: { field },
      cause: error,
    })
  }
  if (code === '23503' || code === 'SQLITE_CONSTRAINT_FOREIGNKEY') {
    return new MiosaError('conflict', `this ${kind} is still referenced by other resources`, { cause: error })
  }
  return error
}

function uniqueField(constraint: string | undefined, table: string | undefined, message: string): string {
  // PostgreSQL names a primary key <table>_pkey, and our constraints <table>_<field>_unique.
  if (constraint?.endsWith('_pkey') === true) return 'id'
  // PostgreSQL: our constraints are named <table>_<field>_unique; the error names the table,
  // which tells where a field of several words (token_hash) begins.
  if (table !== undefined && constraint?.startsWith(`${table}_`) === true && constraint.endsWith('_unique')) {
    return constraint.slice(table.length + 1, -'_unique'.length)
  }
  const named = constraint?.match(/_([a-z]+)_unique$/)
  if (named?.[1] !== undefined) return named[1]
  // SQLite: "UNIQUE constraint failed: projects.workspace_id, projects.slug"; the last column is the one that clashed.
  const columns = message.match(/constraint failed: (.+)$/)?.[1]?.split(', ')
  return columns?.at(-1)?.split('.').at(-1) ?? 'value'
}
