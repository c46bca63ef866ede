import { randomBytes } from 'node:crypto'
import { connect, createServer } from 'node:net'
import type { AddressInfo, Server } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newId } from '../../src/core/ids.js'
import { AGENT_PORT } from '../../src/runtime/agent/protocol.js'
import { INSTANCE_PORT } from '../../src/runtime/instance-driver.js'
import type { InstanceAddress, InstanceDriver, InstanceLogLine, InstanceSpec } from '../../src/runtime/instance-driver.js'
import type { RuntimeDriver, RuntimeRef } from '../../src/runtime/runtime-driver.js'

// What every InstanceDriver (Docker today) must do, driven through the interface only,
// against the real thing it drives. The app is a small node:http server given as the
// start command, so any image with node on its PATH serves as the release image.

export interface InstanceDriverUnderTest {
  instances: InstanceDriver
  /** A release image digest (64 hex) with `node` on its PATH. */
  image: string
  /** Whether the platform has a trusted CA bundle to inject (then the CA variables must be set). */
  caBundle: boolean
  /** The same platform's sandboxes: a sandbox of the instance's workspace must not reach it. */
  sandboxes: RuntimeDriver
  /** Kills an instance's process behind the driver's back, as an operator or the kernel would. */
  killOutside(ref: RuntimeRef): Promise<void>
  /** Removes everything the drivers made during the suite. */
  cleanup(): Promise<void>
}

const ORG = newId('organization')
const WORKSPACE = newId('workspace')

// Answers its env as JSON, logs each request once to stdout and once to stderr, exits 3 on /exit.
const SERVER = `
const http = require('node:http')
let n = 0
http.createServer((req, res) => {
  n++
  console.log('request ' + n + ' ' + req.url)
  console.error('stderr ' + n + ' ' + req.url)
  if (req.url === '/exit') { res.end('bye'); setTimeout(() => process.exit(3), 50); return }
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ env: process.env }))
}).listen(Number(process.env.PORT), () => console.log('listening on ' + process.env.PORT))
`

async function get(address: InstanceAddress, path = '/'): Promise<Response> {
  return fetch(`http://${address.host}:${address.port}${path}`, { signal: AbortSignal.timeout(3_000) })
}

/** The app answers once node has started: poll until it does. */
async function untilServing(address: InstanceAddress): Promise<Response> {
  const deadline = Date.now() + 20_000
  for (;;) {
    try {
      return await get(address)
    } catch (error) {
      if (Date.now() > deadline) throw error
      await new Promise((r) => setTimeout(r, 100))
    }
  }
}

async function until<T>(probe: () => Promise<T | undefined>, what: string, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

/** A node one-liner that prints whether it could open a TCP connection: connected, timeout, or error <code>. */
function probe(host: string, port: number): string[] {
  const script = `require('node:net').connect(${port}, '${host}')
    .on('connect', () => { console.log('connected'); process.exit(0) })
    .on('error', (e) => { console.log('error ' + e.code); process.exit(1) })
    .setTimeout(3000, () => { console.log('timeout'); process.exit(2) })`
  return ['node', '-e', script]
}

async function collect(lines: AsyncIterable<InstanceLogLine>): Promise<InstanceLogLine[]> {
  const out: InstanceLogLine[] = []
  for await (const line of lines) out.push(line)
  return out
}

export function instanceDriverContract(name: string, make: () => Promise<InstanceDriverUnderTest>): void {
  describe(`InstanceDriver contract: ${name}`, () => {
    let under: InstanceDriverUnderTest
    let instances: InstanceDriver
    let spec: InstanceSpec
    let ref: RuntimeRef
    let address: InstanceAddress

    const specOf = (extra: Partial<InstanceSpec> = {}): InstanceSpec => ({
      instanceId: newId('instance'),
      organizationId: ORG,
      workspaceId: WORKSPACE,
      deploymentId: newId('deployment'),
      environment: 'production',
      versionId: newId('version'),
      image: under.image,
      cmd: ['node', '-e', SERVER],
      env: { GREETING: 'hello from the env' },
      cpu: 0.5,
      memoryMb: 256,
      pidsLimit: 256,
      ...extra,
    })

    const oneOff = (cmd: string[], lines: string[] = [], extra: { timeoutMs?: number; signal?: AbortSignal } = {}) => {
      const { instanceId: _, ...rest } = specOf()
      return instances.runOnce({ ...rest, cmd, timeoutMs: extra.timeoutMs ?? 30_000, onLog: (line) => lines.push(line), signal: extra.signal })
    }

    beforeAll(async () => {
      under = await make()
      instances = under.instances
      spec = specOf()
      const started = await instances.start(spec)
      ref = started.ref
      address = started.address
    }, 10 * 60_000)

    afterAll(async () => {
      await under?.cleanup()
    }, 120_000)

    it('starts a server the host reaches at the address it answers, with PORT, the given env and the CA variables', async () => {
      expect(address.port).toBe(INSTANCE_PORT)
      const res = await untilServing(address)
      expect(res.status).toBe(200)
      const { env } = (await res.json()) as { env: Record<string, string> }
      expect(env.PORT).toBe(String(INSTANCE_PORT))
      expect(env.GREETING).toBe('hello from the env')
      if (under.caBundle) {
        for (const variable of ['NODE_EXTRA_CA_CERTS', 'SSL_CERT_FILE', 'REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE']) expect(env[variable], variable).toBeTruthy()
      }
    })

    it('inspects a running instance', async () => {
      expect(await instances.inspect(ref)).toEqual({ running: true, exitCode: null, oomKilled: false, address })
    })

    it('lists its instances with their labels and state', async () => {
      const found = (await instances.list()).find((i) => i.ref.id === ref.id)
      expect(found).toEqual({
        ref,
        instanceId: spec.instanceId,
        organizationId: ORG,
        workspaceId: WORKSPACE,
        deploymentId: spec.deploymentId,
        environment: 'production',
        versionId: spec.versionId,
        running: true,
        exitCode: null,
        oomKilled: false,
        address,
      })
    })

    it('tells the sockets an instance listens on, wherever PORT said to: the reachable ones and loopback-only ones', async () => {
      await untilServing(address)
      expect((await instances.listeningSockets(ref)).filter((s) => s.port === INSTANCE_PORT)).not.toEqual([])
      // An app that ignores PORT: a server on 3000 for everyone, one on 127.0.0.1:4000 for itself.
      const listen = "for (const [port, host] of [[3000, '0.0.0.0'], [4000, '127.0.0.1']]) require('node:http').createServer((q, r) => r.end('on ' + port)).listen(port, host)"
      const own = await instances.start(specOf({ cmd: ['node', '-e', listen] }))
      try {
        const sockets = await until(async () => {
          const found = await instances.listeningSockets(own.ref)
          return found.some((s) => s.port === 3000) && found.some((s) => s.port === 4000) ? found : undefined
        }, 'both servers listening')
        expect(sockets).toEqual(expect.arrayContaining([{ host: '0.0.0.0', port: 3000 }, { host: '127.0.0.1', port: 4000 }]))
        expect(sockets.some((s) => s.port === INSTANCE_PORT)).toBe(false)
        expect(await (await get({ host: own.address.host, port: 3000 })).text()).toBe('on 3000')
      } finally {
        await instances.stop(own.ref, 0)
      }
      expect(await instances.listeningSockets(own.ref)).toEqual([])
    })

    it('gives the last lines of output with their stream and time', async () => {
      const before = Date.now()
      await untilServing(address)
      await get(address, '/tail-check')
      const lines = await until(async () => {
        const got = await collect(instances.logs(ref, { tail: 100, follow: false }))
        return got.some((l) => l.stream === 'stderr' && l.line.endsWith(' /tail-check')) ? got : undefined
      }, 'the request in the logs')
      expect(lines.find((l) => l.line === `listening on ${INSTANCE_PORT}`)?.stream).toBe('stdout')
      const stdout = lines.find((l) => l.line.endsWith(' /tail-check') && l.line.startsWith('request '))
      expect(stdout?.stream).toBe('stdout')
      const stamp = Date.parse(stdout?.timestamp ?? '')
      expect(new Date(stamp).toISOString()).toBe(stdout?.timestamp)
      expect(stamp).toBeGreaterThan(before - 5_000)
      expect(stamp).toBeLessThan(Date.now() + 5_000)
      // tail counts lines of both streams, the newest last.
      const last = await collect(instances.logs(ref, { tail: 2, follow: false }))
      expect(last.length).toBe(2)
      expect(last.map((l) => l.line)).toEqual(lines.slice(-2).map((l) => l.line))
    })

    it('follows new output until the signal aborts, then ends cleanly', async () => {
      await untilServing(address)
      const controller = new AbortController()
      const path = `/follow-${randomBytes(4).toString('hex')}`
      const seen: InstanceLogLine[] = []
      const following = (async () => {
        for await (const line of instances.logs(ref, { tail: 0, follow: true, signal: controller.signal })) {
          seen.push(line)
          // The two streams are separate pipes: either may come first.
          const streams = new Set(seen.filter((l) => l.line.endsWith(path)).map((l) => l.stream))
          if (streams.size === 2) controller.abort()
        }
      })()
      // Requests until the follower has attached and seen one (attaching takes a moment).
      const done = (async () => {
        while (!controller.signal.aborted) {
          await get(address, path).catch(() => {})
          await new Promise((r) => setTimeout(r, 200))
        }
      })()
      const timer = setTimeout(() => controller.abort(), 15_000)
      await following
      clearTimeout(timer)
      await done
      expect(seen.some((l) => l.stream === 'stdout' && l.line.endsWith(path))).toBe(true)
      expect(seen.some((l) => l.stream === 'stderr' && l.line.endsWith(path))).toBe(true)
      expect(seen.some((l) => l.line === `listening on ${INSTANCE_PORT}`)).toBe(false)
    })

    it('stops following when the instance ends, and reports its exit code', async () => {
      const other = await instances.start(specOf())
      await untilServing(other.address)
      const lines = collect(instances.logs(other.ref, { tail: 10, follow: true }))
      await get(other.address, '/exit')
      const status = await until(async () => {
        const s = await instances.inspect(other.ref)
        return s?.running === false ? s : undefined
      }, 'the instance to exit')
      expect(status).toEqual({ running: false, exitCode: 3, oomKilled: false, address: undefined })
      expect((await lines).some((l) => l.stream === 'stdout' && /^request \d+ \/exit$/.test(l.line))).toBe(true)
      const listed = (await instances.list()).find((i) => i.ref.id === other.ref.id)
      expect(listed).toMatchObject({ running: false, exitCode: 3, address: undefined })
      await instances.stop(other.ref, 1_000)
    })

    it('sees an instance killed behind its back as not running', async () => {
      const other = await instances.start(specOf())
      await untilServing(other.address)
      await under.killOutside(other.ref)
      const status = await until(async () => {
        const s = await instances.inspect(other.ref)
        return s?.running === false ? s : undefined
      }, 'the instance to be seen dead')
      expect(status.exitCode).not.toBe(0)
      expect(status.address).toBeUndefined()
      await instances.stop(other.ref, 1_000)
    })

    it('stops and removes an instance, and a second stop is fine', async () => {
      const other = await instances.start(specOf())
      await untilServing(other.address)
      await instances.stop(other.ref, 5_000)
      expect(await instances.inspect(other.ref)).toBeUndefined()
      expect((await instances.list()).some((i) => i.ref.id === other.ref.id)).toBe(false)
      await instances.stop(other.ref, 5_000)
    })

    it('kills an instance that ignores SIGTERM once the grace has passed', async () => {
      const stubborn = `process.on('SIGTERM', () => console.log('ignoring SIGTERM')); ${SERVER}`
      const other = await instances.start(specOf({ cmd: ['node', '-e', stubborn] }))
      await untilServing(other.address)
      const started = Date.now()
      await instances.stop(other.ref, 1_000)
      expect(Date.now() - started).toBeGreaterThanOrEqual(900)
      expect(Date.now() - started).toBeLessThan(15_000)
      expect(await instances.inspect(other.ref)).toBeUndefined()
    })

    it('runs a one-off command, passing its output and answering its exit code', async () => {
      const lines: string[] = []
      expect(await oneOff(['sh', '-c', 'echo "$GREETING on $PORT"; echo to-stderr >&2'], lines)).toEqual({ exitCode: 0 })
      expect(lines).toEqual(expect.arrayContaining(['hello from the env on 8080', 'to-stderr']))
      expect(await oneOff(['sh', '-c', 'echo failing; exit 7'])).toEqual({ exitCode: 7 })
      expect((await instances.list()).every((i) => i.instanceId !== '')).toBe(true)
    })

    it('kills a one-off run past its timeout (exit code null), and rejects one aborted', async () => {
      const started = Date.now()
      expect(await oneOff(['sleep', '60'], [], { timeoutMs: 1_000 })).toEqual({ exitCode: null })
      expect(Date.now() - started).toBeLessThan(20_000)
      const controller = new AbortController()
      setTimeout(() => controller.abort(new Error('cancelled by the test')), 500)
      await expect(oneOff(['sleep', '60'], [], { signal: controller.signal })).rejects.toThrow('cancelled by the test')
    })

    it('fences instances off from the host: a one-off cannot open a connection to a host port', async () => {
      const server: Server = createServer((socket) => socket.end('reached'))
      await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve))
      try {
        const port = (server.address() as AddressInfo).port
        const gateway = address.host.replace(/\.\d+$/, '.1')
        // The probe itself works: a one-off reaches the instance beside it on the workspace's apps network.
        const control: string[] = []
        await oneOff(probe(address.host, address.port), control)
        expect(control).toEqual(['connected'])
        const lines: string[] = []
        await oneOff(probe(gateway, port), lines)
        expect(lines).toEqual([expect.stringMatching(/^(timeout|error ECONNREFUSED|error EHOSTUNREACH)$/)])
      } finally {
        server.close()
      }
    })

    it('keeps sandboxes of the same workspace from reaching an instance, which the host reaches', async () => {
      await under.sandboxes.prepareTemplate('node')
      const sandbox = await under.sandboxes.createSandbox({ sandboxId: newId('sandbox'), organizationId: ORG, workspaceId: WORKSPACE, template: 'node', cpu: 1, memoryMb: 512, pidsLimit: 512 })
      try {
        expect((await untilServing(address)).status).toBe(200)
        const url = `http://${address.host}:${address.port}/`
        const result = await under.sandboxes.exec(sandbox, { argv: ['curl', '-sS', '-m', '3', '-o', '/dev/null', '-w', '%{http_code}', url] })
        // 28: timed out, 7: refused; anything else (127: no curl) would prove nothing.
        expect([7, 28], result.stdout + result.stderr).toContain(result.exit_code)
        // And the other way: an instance cannot reach the sandbox's agent, which the host can.
        const agent = await under.sandboxes.address(sandbox, AGENT_PORT)
        await new Promise<void>((resolve, reject) => {
          const socket = connect(agent.port, agent.host, () => {
            socket.destroy()
            resolve()
          }).on('error', reject)
        })
        const lines: string[] = []
        await oneOff(probe(agent.host, agent.port), lines)
        expect(lines).toEqual([expect.stringMatching(/^(timeout|error ECONNREFUSED|error EHOSTUNREACH)$/)])
      } finally {
        await under.sandboxes.destroy(sandbox)
      }
    }, 120_000)
  })
}
