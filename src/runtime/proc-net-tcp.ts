import { isIPv4 } from 'node:net'

// The listening TCP sockets of a network namespace, from the kernel's /proc/net/tcp and
// /proc/net/tcp6 tables: how the platform finds the port an app actually listens on.

export interface ListeningSocket {
  /** The address it is bound to: 0.0.0.0 or :: for every address, 127.0.0.1 for loopback only. */
  host: string
  port: number
}

/** TCP state 0A: LISTEN. */
const LISTEN = '0A'

/** The LISTEN rows of /proc/net/tcp and /proc/net/tcp6 (either or both, concatenated). */
export function parseProcNetTcp(text: string): ListeningSocket[] {
  const found = new Map<string, ListeningSocket>()
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/)
    // sl local_address rem_address st …; the header's first field is "sl".
    const [sl, local, , state] = fields
    if (sl === undefined || !/^\d+:$/.test(sl) || local === undefined || state !== LISTEN) continue
    const [hexHost, hexPort] = local.split(':')
    if (hexHost === undefined || hexPort === undefined) continue
    const host = decodeHost(hexHost)
    const port = Number.parseInt(hexPort, 16)
    if (host === undefined || !Number.isInteger(port) || port <= 0) continue
    found.set(`${host} ${port}`, { host, port })
  }
  return [...found.values()]
}

/** Whether a socket bound there is reachable only from inside its own namespace. */
export function isLoopback(host: string): boolean {
  return host === '::1' || host.startsWith('127.') || host.startsWith('::ffff:127.')
}

/** The kernel prints an address as 32-bit words in host byte order (little-endian here). */
function decodeHost(hex: string): string | undefined {
  if (!/^[0-9A-Fa-f]+$/.test(hex) || (hex.length !== 8 && hex.length !== 32)) return undefined
  const bytes: number[] = []
  for (let word = 0; word < hex.length; word += 8) {
    for (let b = 6; b >= 0; b -= 2) bytes.push(Number.parseInt(hex.slice(word + b, word + b + 2), 16))
  }
  if (bytes.length === 4) return bytes.join('.')
  // IPv4-mapped (::ffff:a.b.c.d) reads as the IPv4 address it carries.
  if (bytes.slice(0, 10).every((v) => v === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    const v4 = bytes.slice(12).join('.')
    if (isIPv4(v4)) return `::ffff:${v4}`
  }
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16))
  return compress(groups)
}

/** The shortest form of eight groups: the longest run of zero groups becomes "::". */
function compress(groups: string[]): string {
  let best = { start: -1, length: 0 }
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== '0') {
      i++
      continue
    }
    let j = i
    while (j < groups.length && groups[j] === '0') j++
    if (j - i > best.length) best = { start: i, length: j - i }
    i = j
  }
  if (best.length < 2) return groups.join(':')
  return `${groups.slice(0, best.start).join(':')}::${groups.slice(best.start + best.length).join(':')}`
}
