// Output that may print a secret (build logs, release commands, runtime logs) passes through
// a masker before anyone sees it: every occurrence of a secret's value becomes `••••`.

export const MASK = '••••'
/** Shorter values are not masked: masking "1" or "on" would garble every line and hide nothing. */
const MIN_MASKED_LENGTH = 4

export function secretMasker(secrets: readonly string[]): (line: string) => string {
  // Longest first, so a secret that contains another is masked whole.
  const values = [...new Set(secrets.filter((s) => s.length >= MIN_MASKED_LENGTH))].sort((a, b) => b.length - a.length)
  if (values.length === 0) return (line) => line
  return (line) => {
    let out = line
    for (const value of values) if (out.includes(value)) out = out.split(value).join(MASK)
    return out
  }
}
