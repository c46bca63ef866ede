// Stripe-style prefixed random ids. The alphabet is lowercase base32 so an id or
// a slug made from one is always a valid DNS label.
export const ID_PREFIXES = {
  organization: 'org',
  workspace: 'ws',
  project: 'prj',
  environment: 'env',
  sandbox: 'sbx',
  snapshot: 'snap',
  deployment: 'dep',
  version: 'ver',
  release: 'rel',
  build: 'bld',
  instance: 'inst',
  domain: 'dom',
  service: 'svc',
  token: 'tok',
  apiKey: 'key',
  routeChange: 'rtc',
  instanceEvent: 'ievt',
  envVar: 'evar',
  /** A sandbox's background service (a dev server started with exec --background). */
  process: 'proc',
} as const

export type IdKind = keyof typeof ID_PREFIXES
export type IdPrefix = (typeof ID_PREFIXES)[IdKind]

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567'

/** `length` characters of lowercase base32 from a CSPRNG (5 bits each, no modulo bias). */
export function randomBase32(length: number): string {
  // Web Crypto rather than node:crypto keeps this module (and the schemas built on it) browser-safe.
  const bytes = crypto.getRandomValues(new Uint8Array(length))
  let out = ''
  for (const byte of bytes) out += BASE32[byte & 31]
  return out
}

export function newId(kind: IdKind): string {
  return `${ID_PREFIXES[kind]}_${randomBase32(20)}`
}

/** Which kind of resource an id names, from its prefix; undefined for anything else. */
export function idKindOf(id: string): IdKind | undefined {
  const prefix = id.slice(0, id.indexOf('_'))
  return (Object.keys(ID_PREFIXES) as IdKind[]).find((kind) => ID_PREFIXES[kind] === prefix)
}
