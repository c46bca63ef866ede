import { createSocket } from 'node:dgram'
import type { AddressInfo } from 'node:net'
import dnsPacket from 'dns-packet'

// A small authoritative DNS server on 127.0.0.1 (UDP) for tests: CNAME records that a test
// sets and changes as it goes, `*.` wildcards included. Every other name is NXDOMAIN, so
// the platform's resolver, pointed here (MIOSA_DNS_SERVERS), sees exactly what a test says.

const NXDOMAIN = 3

export interface TestDnsServer {
  /** `127.0.0.1:<port>`, for Config.dnsServers. */
  address: string
  /** Sets (or, with undefined, removes) the CNAME of a name; `*.example.com` matches any name under it. */
  cname(name: string, target: string | undefined): void
  /** Names asked about, in order. */
  queries: string[]
  close(): Promise<void>
}

export async function startDnsServer(): Promise<TestDnsServer> {
  const records = new Map<string, string>()
  const queries: string[] = []
  const socket = createSocket('udp4')
  const lookup = (name: string): string | undefined => {
    const exact = records.get(name)
    if (exact !== undefined) return exact
    const parent = name.slice(name.indexOf('.') + 1)
    return name.includes('.') ? records.get(`*.${parent}`) : undefined
  }
  socket.on('message', (message, rinfo) => {
    let query: dnsPacket.DecodedPacket
    try {
      query = dnsPacket.decode(message)
    } catch {
      return
    }
    const question = query.questions?.[0]
    if (question === undefined) return
    const name = question.name.toLowerCase()
    queries.push(name)
    const target = lookup(name)
    const answers: dnsPacket.Answer[] =
      target !== undefined && (question.type === 'CNAME' || question.type === 'A')
        ? [{ type: 'CNAME', class: 'IN', name: question.name, ttl: 1, data: target }]
        : []
    const response = dnsPacket.encode({
      type: 'response',
      id: query.id ?? 0,
      flags: dnsPacket.AUTHORITATIVE_ANSWER | (target === undefined ? NXDOMAIN : 0),
      questions: [question],
      answers,
    })
    socket.send(response, rinfo.port, rinfo.address)
  })
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject)
    socket.bind(0, '127.0.0.1', () => resolve())
  })
  const { port } = socket.address() as AddressInfo
  return {
    address: `127.0.0.1:${port}`,
    cname(name, target) {
      if (target === undefined) records.delete(name.toLowerCase())
      else records.set(name.toLowerCase(), target)
    },
    queries,
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  }
}
