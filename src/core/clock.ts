/** Timestamps are ISO-8601 UTC strings with milliseconds: they sort correctly as text. */
export function nowIso(): string {
  return new Date().toISOString()
}
