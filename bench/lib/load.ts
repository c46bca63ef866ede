import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { delimiter, join } from 'node:path'

// What the load benchmarks share: wrk in a child process (the server under test may run
// in this one and needs its event loop), its output read into numbers, and the small
// chores around starting peers on loopback ports.

export interface WrkResult {
  /** Requests completed in the run. */
  requests: number
  rps: number
  p50: number
  p99: number
  /** Non-2xx/3xx answers plus socket errors. */
  errors: number
  raw: string
}

export function onPath(command: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => dir !== '' && existsSync(join(dir, command)))
}

export async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

export async function waitForPort(port: number, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1')
      socket.once('connect', () => {
        socket.destroy()
        resolve(true)
      })
      socket.once('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error(`nothing listening on 127.0.0.1:${port} after ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

function toMs(value: string): number {
  const match = /^([\d.]+)(us|ms|s)$/.exec(value)
  if (match === null) return Number.NaN
  const n = Number(match[1])
  return match[2] === 'us' ? n / 1000 : match[2] === 's' ? n * 1000 : n
}

/** wrk in a child process, awaited; throws when it fails or its output cannot be read. */
export async function wrk(o: {
  url: string
  seconds: number
  threads: number
  connections: number
  host?: string | undefined
  headers?: Record<string, string> | undefined
}): Promise<WrkResult> {
  const headers = [...(o.host === undefined ? [] : [`Host: ${o.host}`]), ...Object.entries(o.headers ?? {}).map(([k, v]) => `${k}: ${v}`)]
  const args = [`-t${o.threads}`, `-c${o.connections}`, `-d${o.seconds}s`, '--latency', ...headers.flatMap((h) => ['-H', h]), o.url]
  const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()))
  const [code] = (await once(child, 'close')) as [number | null]
  if (code !== 0) throw new Error(`wrk failed: ${err || out}`)
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? Number.NaN)
  const p50 = toMs(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? '')
  const p99 = toMs(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? '')
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0)
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  const errors = non2xx + (socketErrors === null ? 0 : socketErrors.slice(1).reduce((sum, n) => sum + Number(n), 0))
  if (Number.isNaN(rps)) throw new Error(`could not read wrk's output for ${o.url}:\n${out}`)
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? Number.NaN)
  return { requests, rps, p50, p99, errors, raw: out }
}

/** Starts a peer server (Caddy, nginx) and answers once it listens on `port`; if it never does, it is killed and its stderr says why. */
export async function startPeer(name: string, command: string, args: string[], port: number, env?: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], ...(env === undefined ? {} : { env }) })
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  try {
    await waitForPort(port)
  } catch (error) {
    child.kill()
    throw new Error(`${name} did not start: ${stderr.slice(-2000)}`, { cause: error })
  }
  return { child, port }
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

export function cpus(): number {
  return Number(spawnSync('nproc', { encoding: 'utf8' }).stdout.trim()) || 0
}
