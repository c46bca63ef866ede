// How commands answer: exactly one JSON document on stdout with --json, a readable
// table or record otherwise. Errors go to stderr (cli/main.ts).

export type Row = Record<string, unknown>

export interface Output {
  /** What --json prints. */
  data: unknown
  /** What a person sees; defaults to a record or table rendered from `data`. '' prints nothing (a command that streamed its output). */
  human?: string | undefined
  /** The process exit code when the command itself succeeded (`sandbox exec` passes on the command's). Default 0. */
  exitCode?: number | undefined
}

export function emit(output: Output, json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(output.data, null, 2)}\n`)
    return
  }
  const text = output.human ?? renderRecord(output.data as Row)
  if (text !== '') process.stdout.write(text.endsWith('\n') ? text : `${text}\n`)
}

function cell(value: unknown): string {
  if (value === null || value === undefined) return '-'
  if (typeof value === 'object') {
    const entries = Object.entries(value as Row)
    return entries.length === 0 ? '-' : entries.map(([k, v]) => `${k}=${String(v)}`).join(',')
  }
  return String(value)
}

export function renderTable(rows: readonly Row[], columns: readonly string[]): string {
  if (rows.length === 0) return '(none)'
  const table = [columns.map((c) => c.toUpperCase()), ...rows.map((row) => columns.map((c) => cell(row[c])))]
  const widths = columns.map((_, i) => Math.max(...table.map((line) => line[i]?.length ?? 0)))
  return table.map((line) => line.map((v, i) => v.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n')
}

export function renderRecord(record: Row): string {
  const keys = Object.keys(record)
  const width = Math.max(...keys.map((k) => k.length))
  return keys.map((k) => `${k.padEnd(width)}  ${cell(record[k])}`).join('\n')
}

/** A page rendered as a table, with a hint where more pages follow. */
export function renderPage(page: { data: readonly Row[]; next_cursor: string | null }, columns: readonly string[]): string {
  const table = renderTable(page.data, columns)
  return page.next_cursor === null ? table : `${table}\n\nmore: --cursor ${page.next_cursor}  (or --all)`
}
