import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { lookup } from 'node:dns/promises'
import { readFile } from 'node:fs/promises'
import { isIPv4 } from 'node:net'
import type { Logger } from 'pino'
import { MiosaError } from '../../core/errors.js'
import type { EgressPolicy } from '../runtime-driver.js'

// A restricted sandbox's egress, enforced on the host where the container cannot reach
// it (it has no NET_ADMIN): one chain per container, MIOSA-EG-<container>-<hash of its
// rules>, jumped to from DOCKER-USER for packets from the container's address that leave
// its workspace's bridge. The chain only ever RETURNs (allowed: Docker's own rules and
// the metadata block after it still apply) or REJECTs, so an allow-list can never open
// more than an open sandbox has. Kept inside the workspace network: its sibling
// sandboxes, and the host's answers to connections the host opened (the agent, previews).
//
// A policy change (or a new address after a restart) is a new chain name: the new chain
// and its jump go in and the old ones go out in one iptables-restore transaction, so a
// sandbox is never open in between. Host names are resolved (IPv4) when the rules are
// applied: at each start, resume and reconciler pass, not as the name's records change.

const CHAIN_PREFIX = 'MIOSA-EG-'
const FORWARD_CHAIN = 'DOCKER-USER'
const LOOKUP_TIMEOUT_MS = 3000
/** Docker's embedded resolver forwards to these when the host's resolv.conf has only loopback servers. */
const DOCKER_FALLBACK_DNS = ['8.8.8.8', '8.8.4.4']

export interface EgressTarget {
  /** The container's id (its chain is named after it). */
  containerId: string
  /** Its address on its workspace network. */
  ip: string
  /** The host interface of its workspace network's bridge. */
  bridge: string
}

interface Listing {
  chains: string[]
  /** DOCKER-USER rules jumping to one of our chains, as `iptables -S` prints them after `-A DOCKER-USER`. */
  jumps: string[][]
}

export class EgressRules {
  private queue: Promise<unknown> = Promise.resolve()

  constructor(private readonly logger: Logger) {}

  /** Applies the policy to the container's current address; a no-op when those exact rules are in place. */
  apply(target: EgressTarget, policy: EgressPolicy): Promise<void> {
    return this.serial(async () => {
      const rules = await this.chainRules(policy)
      const hash = createHash('sha256').update(JSON.stringify([target.ip, target.bridge, rules])).digest('hex').slice(0, 6)
      const chain = `${chainPrefixOf(target.containerId)}${hash}`
      const listing = await list()
      const jump = ['-s', `${target.ip}/32`, '-i', target.bridge, '!', '-o', target.bridge, '-j', chain]
      if (listing.chains.includes(chain) && listing.jumps.some((j) => j.join(' ') === jump.join(' '))) return
      const lines = [`:${chain} - [0:0]`, ...rules.map((r) => ['-A', chain, ...r].join(' ')), ['-I', FORWARD_CHAIN, '1', ...jump].join(' ')]
      lines.push(...this.removalLines(listing, target.containerId, chain))
      await restore(lines)
      this.logger.info({ container: target.containerId, ip: target.ip, chain }, 'egress rules applied')
    })
  }

  /** Removes every rule of the container (stopped or destroyed: its address goes to the next container). */
  remove(containerId: string): Promise<void> {
    return this.serial(async () => {
      const lines = this.removalLines(await list(), containerId)
      if (lines.length > 0) await restore(lines)
    })
  }

  /**
   * Removes the rules of containers that are gone or not running (`running`: every running
   * container on the daemon, by id). Listed under the same queue as apply, so a container
   * started meanwhile keeps the rules it gets.
   */
  prune(running: () => Promise<ReadonlySet<string>>): Promise<number> {
    return this.serial(async () => {
      const listing = await list()
      if (listing.chains.length === 0) return 0
      const live = new Set([...(await running())].map((id) => chainPrefixOf(id)))
      const stale = new Set(listing.chains.map(prefixOfChain).filter((prefix) => !live.has(prefix)))
      const lines = [...stale].flatMap((prefix) => this.removalLinesByPrefix(listing, prefix))
      if (lines.length > 0) await restore(lines)
      return stale.size
    })
  }

  /** The chain's rules: answers to connections, DNS through Docker's resolver, the allowed targets, then reject. */
  private async chainRules(policy: EgressPolicy): Promise<string[][]> {
    const dns = await upstreamNameservers()
    const targets = await resolveTargets(policy.allow, this.logger)
    return [
      ['-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'RETURN'],
      // Docker's embedded resolver (127.0.0.11 in the container) forwards from the container's own address.
      ...dns.flatMap((server) => ['udp', 'tcp'].map((proto) => ['-d', `${server}/32`, '-p', proto, '--dport', '53', '-j', 'RETURN'])),
      ...targets.map((cidr) => ['-d', cidr, '-j', 'RETURN']),
      ['-j', 'REJECT', '--reject-with', 'icmp-admin-prohibited'],
    ]
  }

  private removalLines(listing: Listing, containerId: string, keep?: string): string[] {
    return this.removalLinesByPrefix(listing, chainPrefixOf(containerId), keep)
  }

  private removalLinesByPrefix(listing: Listing, prefix: string, keep?: string): string[] {
    const chains = listing.chains.filter((c) => c.startsWith(prefix) && c !== keep)
    const jumps = listing.jumps.filter((j) => chains.includes(j[j.length - 1] as string))
    return [...jumps.map((j) => ['-D', FORWARD_CHAIN, ...j].join(' ')), ...chains.flatMap((c) => [`-F ${c}`, `-X ${c}`])]
  }

  /** One change at a time in this process: a listing stays true until the change made from it is in. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn)
    this.queue = run.catch(() => { /* the caller gets the error through run; the queue only keeps the order */ })
    return run
  }
}

function chainPrefixOf(containerId: string): string {
  return `${CHAIN_PREFIX}${containerId.slice(0, 12)}-`
}

function prefixOfChain(chain: string): string {
  return chain.slice(0, CHAIN_PREFIX.length + 13)
}

/** IPv4 CIDRs for the allow-list: addresses and CIDRs as given, host names resolved now (one that does not resolve is left out). */
async function resolveTargets(allow: readonly string[], logger: Logger): Promise<string[]> {
  const out = new Set<string>()
  for (const entry of allow) {
    if (isIPv4(entry)) out.add(`${entry}/32`)
    else if (entry.includes('/')) out.add(entry)
    else {
      const addresses = await lookupV4(entry)
      if (addresses.length === 0) logger.warn({ host: entry }, 'egress: an allowed host name did not resolve; it stays unreachable')
      for (const address of addresses) out.add(`${address}/32`)
    }
  }
  return [...out].sort()
}

async function lookupV4(host: string): Promise<string[]> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never[]>((resolve) => (timer = setTimeout(() => resolve([]), LOOKUP_TIMEOUT_MS)))
  try {
    const found = lookup(host, { all: true, family: 4 }).then((a) => a.map((x) => x.address), () => [])
    return await Promise.race([found, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** The servers Docker's embedded resolver forwards to: the host's, without loopback ones (Docker drops those). */
async function upstreamNameservers(): Promise<string[]> {
  const text = await readFile('/etc/resolv.conf', 'utf8').catch(() => '')
  const servers = [...text.matchAll(/^\s*nameserver\s+(\S+)/gm)].map((m) => m[1] as string).filter((s) => isIPv4(s) && !s.startsWith('127.'))
  return servers.length > 0 ? servers : DOCKER_FALLBACK_DNS
}

async function list(): Promise<Listing> {
  const text = await iptables(['-S'])
  const chains: string[] = []
  const jumps: string[][] = []
  for (const line of text.split('\n')) {
    const words = line.trim().split(/\s+/)
    if (words[0] === '-N' && words[1]?.startsWith(CHAIN_PREFIX) === true) chains.push(words[1])
    else if (words[0] === '-A' && words[1] === FORWARD_CHAIN && words[words.length - 1]?.startsWith(CHAIN_PREFIX) === true) jumps.push(words.slice(2))
  }
  return { chains, jumps }
}

function iptables(args: string[]): Promise<string> {
  return run('iptables', ['-w', '5', ...args])
}

/** One transaction: every line goes in, or none does. */
async function restore(lines: string[]): Promise<void> {
  await run('iptables-restore', ['-w', '5', '--noflush'], ['*filter', ...lines, 'COMMIT', ''].join('\n'))
}

function run(cmd: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()))
    const fail = (why: string) =>
      reject(new MiosaError('internal', `${cmd} failed (${why}): a sandbox's egress policy needs root and iptables on the host`))
    child.on('error', (error) => fail(error.message))
    child.on('exit', (code) => (code === 0 ? resolve(stdout) : fail(stderr.trim().split('\n').filter((l) => !l.startsWith('# Warning')).join('; ') || `exit ${code}`)))
    if (input !== undefined && child.stdin !== null) {
      child.stdin.on('error', () => {}) // the exit code says what happened
      child.stdin.end(input)
    }
  })
}
