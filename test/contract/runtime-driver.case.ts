import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import type { Readable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newId } from '../../src/core/ids.js'
import type { RuntimeDriver, RuntimeRef, SandboxSpec } from '../../src/runtime/runtime-driver.js'
import { expectMiosaError } from '../helpers/errors.js'

// What every RuntimeDriver (Docker today; microVMs or Kubernetes later) must do, driven
// through the interface only. A driver passes when this whole suite passes against the
// real thing it drives.

export interface DriverUnderTest {
  driver: RuntimeDriver
  /** Removes everything the driver made during the suite. */
  cleanup(): Promise<void>
}

const ORG = newId('organization')
const WORKSPACE_A = newId('workspace')
const WORKSPACE_B = newId('workspace')

function spec(workspaceId: string, extra: Partial<SandboxSpec> = {}): SandboxSpec {
  return { sandboxId: newId('sandbox'), organizationId: ORG, workspaceId, template: 'node', cpu: 1, memoryMb: 512, pidsLimit: 512, ...extra }
}

async function text(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

export function runtimeDriverContract(name: string, make: () => Promise<DriverUnderTest>): void {
  describe(`RuntimeDriver contract: ${name}`, () => {
    let under: DriverUnderTest
    let driver: RuntimeDriver
    let a: RuntimeRef
    let aSpec: SandboxSpec

    const sh = (ref: RuntimeRef, script: string, extra: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {}) =>
      driver.exec(ref, { argv: ['sh', '-lc', script], ...extra })

    beforeAll(async () => {
      under = await make()
      driver = under.driver
      // The first run on a machine builds the template images: minutes, once.
      await driver.prepareTemplate('node')
      aSpec = spec(WORKSPACE_A)
      a = await driver.createSandbox(aSpec)
    }, 20 * 60_000)

    afterAll(async () => {
      await under?.cleanup()
    }, 120_000)

    it('lists the templates the documents name', async () => {
      const names = (await driver.listTemplates()).map((t) => t.name)
      expect(names).toEqual(expect.arrayContaining(['miosa-sandbox', 'node', 'nextjs', 'python', 'static']))
      expect((await driver.listTemplates()).find((t) => t.name === 'node')?.built).toBe(true)
    })

    it('execs argv with cwd, env and exit codes, and caps output with a truncated flag', async () => {
      const result = await driver.exec(a, { argv: ['sh', '-c', 'pwd; echo "$GREETING"; echo oops >&2; exit 3'], env: { GREETING: 'hello' } })
      expect(result.stdout).toBe('/workspace\nhello\n')
      expect(result.stderr).toBe('oops\n')
      expect(result.exit_code).toBe(3)
      expect(result.truncated).toBe(false)
      expect((await driver.exec(a, { argv: ['pwd'], cwd: '/tmp' })).stdout).toBe('/tmp\n')
      const big = await driver.exec(a, { argv: ['sh', '-c', 'head -c 300000 /dev/zero | tr "\\0" x'], maxOutputBytes: 100_000 })
      expect(big.truncated).toBe(true)
      expect(big.stdout.length).toBe(100_000)
      expect((await driver.exec(a, { argv: ['no-such-binary'] })).exit_code).toBe(127)
    })

    it('kills a command that runs past its timeout', async () => {
      const result = await driver.exec(a, { argv: ['sleep', '30'], timeoutMs: 500 })
      expect(result.timed_out).toBe(true)
      expect(result.duration_ms).toBeLessThan(10_000)
    })

    it('points every common tool at the injected CA bundle', async () => {
      const { stdout } = await sh(a, 'for v in NODE_EXTRA_CA_CERTS SSL_CERT_FILE REQUESTS_CA_BUNDLE PIP_CERT GIT_SSL_CAINFO CURL_CA_BUNDLE; do printenv $v; done')
      const paths = stdout.trim().split('\n')
      expect(paths).toHaveLength(6)
      expect(new Set(paths).size).toBe(1)
      expect((await sh(a, `test -s ${paths[0]} && echo present`)).stdout).toBe('present\n')
    })

    it('never shows the agent token to commands', async () => {
      expect((await sh(a, 'env')).stdout).not.toMatch(/MIOSA_AGENT/)
    })

    it('streams output as it comes, takes stdin, and ends with the exit code', async () => {
      const chunks: string[] = []
      const stdin = (async function* () {
        yield Buffer.from('line one\n')
        yield Buffer.from('line two\n')
      })()
      const result = await driver.exec(a, { argv: ['sh', '-c', 'cat; echo done >&2'] }, {
        onStdout: (c) => chunks.push(`out:${c.toString()}`),
        onStderr: (c) => chunks.push(`err:${c.toString()}`),
        stdin,
      })
      expect(result.exit_code).toBe(0)
      expect(chunks.join('')).toContain('line one\nline two\n')
      expect(chunks.join('')).toContain('err:done\n')
    })

    it('ends everything an exec started when it returns, even what left its process group; a service keeps running', async () => {
      const started = Date.now()
      // A plain `&`, a nohup'd one, and one that made its own process group (as `timeout` does).
      const result = await sh(a, 'sleep 1000 & echo $! > /tmp/bg.pid; (nohup sleep 1001 >/dev/null 2>&1 &); setsid -w sleep 1002 & sleep 0.2; echo started')
      expect(result.stdout).toBe('started\n')
      expect(Date.now() - started).toBeLessThan(5_000)
      expect((await sh(a, 'kill -0 "$(cat /tmp/bg.pid)" 2>/dev/null && echo alive || echo gone')).stdout).toBe('gone\n')
      expect((await sh(a, 'ps -eo args | grep -c "^sleep 100[012]" || true')).stdout).toBe('0\n')
      await driver.startService(a, 'sleeper', { argv: ['sh', '-c', 'sleep 1003'] })
      expect((await sh(a, 'ps -eo args | grep -c "^sleep 1003"')).stdout).toBe('1\n')
      expect(await driver.stopService(a, 'sleeper')).toBe(true)
    })

    it('kills what a timed-out exec started, not only the command', async () => {
      const result = await sh(a, 'sleep 1004 & sleep 1005 & sleep 30', { timeoutMs: 500 })
      expect(result.timed_out).toBe(true)
      expect((await sh(a, 'ps -eo args | grep -c "^sleep 100[45]" || true')).stdout).toBe('0\n')
    })

    it('answers the next exec normally after a fork bomb', async () => {
      const bomb = await sh(a, 'timeout 10 bash -c ":(){ :|:& };:"; echo done')
      expect(bomb.stdout).toContain('done')
      const next = await sh(a, 'echo still here; ps -e --no-headers | wc -l')
      expect(next.exit_code, next.stderr).toBe(0)
      const [line, count] = next.stdout.trim().split('\n')
      expect(line).toBe('still here')
      // The agent (and its file server), tini, and this exec's own sh and ps.
      expect(Number(count)).toBeLessThan(10)
    }, 60_000)

    it('reads and writes files with the rights of the user commands run as', async () => {
      await expectMiosaError(driver.readFile(a, '/etc/shadow'), 'forbidden')
      await expectMiosaError(driver.writeFile(a, '/etc/passwd', Buffer.from('root::0:0::/root:/bin/sh\n')), 'forbidden')
      expect((await sh(a, 'grep -c "^root:x:" /etc/passwd')).stdout).toBe('1\n')
      await driver.writeFile(a, '/workspace/owned/by-user.txt', Buffer.from('mine'))
      const whoami = (await sh(a, 'id -u')).stdout
      expect((await sh(a, 'stat -c %u /workspace/owned /workspace/owned/by-user.txt')).stdout).toBe(whoami + whoami)
    })

    it('reads /proc and /sys files whole, and refuses devices', async () => {
      const address = (await text(await driver.readFile(a, '/sys/class/net/eth0/address'))).toString()
      expect(address).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}\n$/)
      const status = (await text(await driver.readFile(a, '/proc/self/status'))).toString()
      expect(status).toMatch(/^Name:/)
      expect(status).toContain('Pid:')
      await expectMiosaError(driver.readFile(a, '/dev/zero'), 'invalid')
    })

    it('bounds /tmp: filling it fails with "No space left on device", and the file API says so', async () => {
      const full = await sh(a, 'head -c 200M /dev/zero > /tmp/fill; echo "exit $?"; rm -f /tmp/fill')
      expect(full.stderr).toMatch(/No space left on device/)
      expect(full.stdout).toBe('exit 1\n')
      const big = Buffer.alloc(200 * 1024 * 1024)
      await expectMiosaError(driver.writeFile(a, '/tmp/big.bin', big), 'payload_too_large')
      // Nothing half-written left behind.
      expect((await sh(a, 'ls -A /tmp | grep -c "^\\.miosa-.*\\.tmp$" || true')).stdout).toBe('0\n')
    }, 60_000)

    it('measures disk use of the writable layer (/workspace counted, /tmp not), when the driver can', async () => {
      if (driver.diskUsage === undefined) return
      const before = await driver.diskUsage(a)
      expect(before).toEqual(expect.any(Number))
      await sh(a, 'head -c 20M /dev/zero > /workspace/disk-probe && head -c 20M /dev/zero > /tmp/disk-probe')
      const during = (await driver.diskUsage(a)) as number
      expect(during - (before as number)).toBeGreaterThanOrEqual(20 * 1024 * 1024)
      expect(during - (before as number)).toBeLessThan(30 * 1024 * 1024)
      await sh(a, 'rm /workspace/disk-probe /tmp/disk-probe')
      expect(await driver.diskUsage(a)).toBeLessThan(during - 10 * 1024 * 1024)
      expect(await driver.diskUsage({ ...a, id: 'f'.repeat(64) })).toBeUndefined()
    }, 60_000)

    it('reads and writes files binary-safe, and lists, stats, moves and removes them', async () => {
      const bytes = randomBytes(256 * 1024)
      const written = await driver.writeFile(a, '/workspace/data/blob.bin', bytes)
      expect(written).toMatchObject({ type: 'file', size: bytes.length, path: '/workspace/data/blob.bin' })
      expect((await text(await driver.readFile(a, '/workspace/data/blob.bin'))).equals(bytes)).toBe(true)
      await driver.writeFile(a, 'relative.txt', Buffer.from('relative to /workspace'))
      expect((await sh(a, 'cat /workspace/relative.txt')).stdout).toBe('relative to /workspace')
      await driver.mkdir(a, '/workspace/data/nested/deeper')
      const moved = await driver.move(a, '/workspace/data/blob.bin', '/workspace/data/nested/moved.bin', false)
      expect(moved.path).toBe('/workspace/data/nested/moved.bin')
      const names = (await driver.list(a, '/workspace/data/nested')).map((e) => `${e.name}:${e.type}`)
      expect(names).toEqual(['deeper:dir', 'moved.bin:file'])
      expect((await driver.stat(a, '/workspace/data/nested')).type).toBe('dir')
      await expectMiosaError(driver.remove(a, '/workspace/data', false), 'conflict')
      await driver.remove(a, '/workspace/data', true)
      await expectMiosaError(driver.stat(a, '/workspace/data'), 'not_found')
      await expectMiosaError(driver.readFile(a, '/workspace/missing.txt'), 'not_found')
    })

    it('moves a directory in and out as a tar archive', async () => {
      await sh(a, 'mkdir -p /workspace/site/css && echo "<h1>hi</h1>" > /workspace/site/index.html && echo "h1{}" > /workspace/site/css/a.css')
      const tar = await text(await driver.downloadArchive(a, '/workspace/site'))
      const { Readable: ReadableStream } = await import('node:stream')
      await driver.uploadArchive(a, '/workspace/copy', ReadableStream.from([tar]))
      expect((await sh(a, 'cat /workspace/copy/index.html /workspace/copy/css/a.css')).stdout).toBe('<h1>hi</h1>\nh1{}\n')
    })

    it('opens an interactive terminal', async () => {
      const terminal = await driver.openTerminal(a, { cols: 80, rows: 24 })
      let seen = ''
      terminal.stream.on('data', (c: Buffer) => (seen += c.toString()))
      terminal.stream.write('echo $((6*7))-answer\n')
      const deadline = Date.now() + 10_000
      while (!seen.includes('42-answer') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
      await terminal.resize(100, 30)
      terminal.close()
      expect(seen).toContain('42-answer')
    })

    it('reaches a port inside the sandbox from the platform, at the address it gives', async () => {
      await driver.startService(a, 'web', { argv: ['node', '-e', "require('http').createServer((q,s)=>s.end('from inside')).listen(3000)"] })
      const { host, port } = await driver.address(a, 3000)
      let body = ''
      for (let i = 0; i < 50 && body === ''; i++) {
        body = await fetch(`http://${host}:${port}/`).then((r) => r.text(), () => '')
        if (body === '') await new Promise((r) => setTimeout(r, 100))
      }
      expect(body).toBe('from inside')
    })

    it('keeps files across stop and resume, and lists the sandbox as stopped meanwhile', async () => {
      await driver.writeFile(a, '/workspace/kept.txt', Buffer.from('still here'))
      await driver.stop(a)
      const listed = (await driver.listSandboxes()).find((s) => s.ref.id === a.id)
      expect(listed).toMatchObject({ sandboxId: aSpec.sandboxId, organizationId: ORG, workspaceId: WORKSPACE_A, running: false })
      await expectMiosaError(driver.exec(a, { argv: ['true'] }), 'conflict')
      await driver.resume(a)
      expect((await sh(a, 'cat /workspace/kept.txt')).stdout).toBe('still here')
      expect((await driver.listSandboxes()).find((s) => s.ref.id === a.id)?.running).toBe(true)
    })

    it('snapshots into something new sandboxes start from, leaving the original untouched', async () => {
      await driver.writeFile(a, '/workspace/before.txt', Buffer.from('before snapshot'))
      const snap = await driver.snapshot(a, newId('snapshot'))
      expect(snap.sizeBytes).toBeGreaterThan(0)
      await driver.writeFile(a, '/workspace/after.txt', Buffer.from('after snapshot'))
      const b = await driver.createSandbox(spec(WORKSPACE_A, { fromSnapshot: snap.id }))
      expect((await sh(b, 'cat /workspace/before.txt')).stdout).toBe('before snapshot')
      expect((await sh(b, 'test -e /workspace/after.txt || echo absent')).stdout).toBe('absent\n')
      await driver.writeFile(b, '/workspace/only-in-copy.txt', Buffer.from('x'))
      expect((await sh(a, 'test -e /workspace/only-in-copy.txt || echo absent')).stdout).toBe('absent\n')
      // In use by b: refused; once b is gone, deleted.
      await expectMiosaError(driver.deleteSnapshot(snap), 'conflict')
      await driver.destroy(b)
      await driver.deleteSnapshot(snap)
      await driver.deleteSnapshot(snap) // idempotent
    })

    it('keeps workspaces apart: a sandbox cannot open a connection to another workspace\'s sandbox', async () => {
      const b = await driver.createSandbox(spec(WORKSPACE_B))
      await driver.startService(b, 'echo', { argv: ['node', '-e', "require('net').createServer(s=>s.end('hi')).listen(4000)"] })
      const target = await driver.address(b, 4000)
      // The platform itself can reach it …
      await waitForPort(target.host, target.port)
      // … a sandbox of another workspace cannot.
      const probe = `node -e "const s=require('net').connect(${target.port},'${target.host}');s.setTimeout(2000);s.on('connect',()=>{console.log('connected');process.exit(0)});s.on('timeout',()=>{console.log('blocked');process.exit(0)});s.on('error',e=>{console.log('blocked',e.code);process.exit(0)})"`
      expect((await sh(a, probe)).stdout).toMatch(/^blocked/)
      // A second sandbox of the same workspace can.
      const a2 = await driver.createSandbox(spec(WORKSPACE_B))
      expect((await sh(a2, probe)).stdout).toBe('connected\n')
      await driver.destroy(a2)
      await driver.destroy(b)
    })

    it('destroys for good, idempotently', async () => {
      const c = await driver.createSandbox(spec(WORKSPACE_A))
      await driver.destroy(c)
      await driver.destroy(c)
      await expectMiosaError(driver.exec(c, { argv: ['true'] }), 'not_found')
      expect((await driver.listSandboxes()).some((s) => s.ref.id === c.id)).toBe(false)
    })
  })
}

async function waitForPort(host: string, port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, host)
      socket.once('connect', () => {
        socket.destroy()
        resolve(true)
      })
      socket.once('error', () => resolve(false))
    })
    if (ok) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`nothing listening on ${host}:${port}`)
}
