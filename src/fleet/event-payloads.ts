import { MiosaError } from '../core/errors.js'
import type { PlatformEvent, PlatformEventType } from '../core/platform-events.js'

// How a PlatformEvent travels as a NOTIFY payload: JSON tagged with the id of the
// process that sent it (so it can ignore its own echo), at most 7999 bytes, which is
// PostgreSQL's limit (a payload must be shorter than 8000 bytes).

export const MAX_PAYLOAD_BYTES = 7999

interface Envelope {
  /** The sending process. */
  o: string
  e: PlatformEvent
}

const TYPES: ReadonlySet<PlatformEventType> = new Set<PlatformEventType>([
  'route.changed',
  'instances.changed',
  'sandbox.changed',
  'sandbox.activity',
  'access.revoked',
  'tenant.changed',
])

/**
 * The payloads that carry `event`. A `sandbox.activity` report too long for one is split
 * into several whose id lists together are the original's (each is a report of its own:
 * "these were used", so receivers add them up). Anything else too long is refused.
 */
export function encodeEvent(origin: string, event: PlatformEvent): string[] {
  const whole = JSON.stringify({ o: origin, e: event } satisfies Envelope)
  if (Buffer.byteLength(whole) <= MAX_PAYLOAD_BYTES) return [whole]
  if (event.type !== 'sandbox.activity') throw tooLarge(event.type, Buffer.byteLength(whole))
  return splitActivity(origin, event)
}

function splitActivity(origin: string, event: PlatformEvent & { type: 'sandbox.activity' }): string[] {
  const empty = { ...event, sandboxIds: [] as string[], held: [] as string[] }
  const budget = MAX_PAYLOAD_BYTES - Buffer.byteLength(JSON.stringify({ o: origin, e: empty } satisfies Envelope))
  const parts: (typeof empty)[] = []
  let part = { ...empty, sandboxIds: [] as string[], held: [] as string[] }
  let used = 0
  const items = [...event.sandboxIds.map((id) => ['sandboxIds', id] as const), ...event.held.map((id) => ['held', id] as const)]
  for (const [list, id] of items) {
    // The id as a JSON string, and the comma before it.
    const cost = Buffer.byteLength(JSON.stringify(id)) + 1
    if (cost > budget) throw tooLarge(event.type, cost, `one sandbox id is ${cost} bytes`)
    if (used + cost > budget) {
      parts.push(part)
      part = { ...empty, sandboxIds: [], held: [] }
      used = 0
    }
    part[list].push(id)
    used += cost
  }
  parts.push(part)
  return parts.map((e) => JSON.stringify({ o: origin, e } satisfies Envelope))
}

function tooLarge(type: string, bytes: number, why?: string): MiosaError {
  return new MiosaError(
    'payload_too_large',
    `event ${type} is too large to travel as a PostgreSQL notification (${why ?? `${bytes} bytes`}; at most ${MAX_PAYLOAD_BYTES})`,
    { details: { type, bytes, limit: MAX_PAYLOAD_BYTES } },
  )
}

/** The sender and event of a payload, or an error saying why it is not one of ours. */
export function decodeEvent(payload: string): { origin: string; event: PlatformEvent } | Error {
  let parsed: unknown
  try {
    parsed = JSON.parse(payload)
  } catch (error) {
    return new Error(`a notification that is not JSON: ${payload.slice(0, 80)}`, { cause: error })
  }
  if (typeof parsed !== 'object' || parsed === null) return new Error(`a notification that is not an event: ${payload.slice(0, 80)}`)
  const { o, e } = parsed as { o?: unknown; e?: unknown }
  if (typeof o !== 'string' || typeof e !== 'object' || e === null) return new Error(`a notification that is not an event: ${payload.slice(0, 80)}`)
  const type = (e as { type?: unknown }).type
  // A newer process of the fleet may send types this one does not know yet.
  if (typeof type !== 'string' || !TYPES.has(type as PlatformEventType)) return new Error(`an event of unknown type ${String(type).slice(0, 40)}`)
  return { origin: o, event: e as PlatformEvent }
}
