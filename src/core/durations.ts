// Durations as people write them: `90`, `90s`, `10m`, `1h`, `2d` (a bare number is seconds).

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 }

export function parseDuration(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? Math.floor(value) : undefined
  const match = value.trim().match(/^(\d+(?:\.\d+)?)\s*([smhd]?)$/i)
  if (match === null) return undefined
  const seconds = Number(match[1]) * UNIT_SECONDS[(match[2] || 's').toLowerCase()]!
  return Number.isFinite(seconds) ? Math.floor(seconds) : undefined
}

export function formatDuration(seconds: number): string {
  if (seconds % 86_400 === 0 && seconds > 0) return `${seconds / 86_400}d`
  if (seconds % 3600 === 0 && seconds > 0) return `${seconds / 3600}h`
  if (seconds % 60 === 0 && seconds > 0) return `${seconds / 60}m`
  return `${seconds}s`
}
