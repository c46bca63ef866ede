import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { chmod, chown, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AgentClient } from '../../src/runtime/agent/agent-client.js'
import { AGENT_TOKEN_HEADER } from '../../src/runtime/agent/protocol.js'
import { expectMiosaError } from '../helpers/errors.js'

// The sandbox agent run on the host as a child process (through tsx, from source), driven
// by the platform's AgentClient over 127.0.0.1. Paths are absolute, inside a temp dir.

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const AGENT = fileURLToPath(new URL('../../src/runtime/agent/agent.ts', import.meta.url))
const TOKEN = 'tok'
const IS_ROOT = process.getuid?.() === 0
/** The sandbox user of the second agent, whose file routes run as it (when the tests run as root). */
const OWNER = { uid: 1000, gid: 1000 }

let agent: ChildProcess
let port: number
let client: AgentClient
let dir: string
/** Background processes tests leave running on purpose, killed at the end. */
const leftovers: number[] = []

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'miosa-agent-'))
  // Traversable, so the sandbox user's file server can reach directories below it.
  await chmod(dir, 0o755)
  ;({ agent, port } = await startAgent({}))
  client = new AgentClient({ host: '127.0.0.1', port, token: TOKEN })
  await client.waitUntilReady(5_000)
})

async function startAgent(env: Record<string, string>): Promise<{ agent: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', AGENT], {
    cwd: ROOT,
    env: { ...process.env, MIOSA_AGENT_PORT: '0', MIOSA_AGENT_TOKEN: TOKEN, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  return { agent: child, port: await listeningPort(child) }
}

afterAll(async () => {
  client?.close()
  for (const pid of leftovers) kill(pid)
  agent?.kill('SIGKILL')
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

/** The port from the agent's first log line (it was told to take any free one). */
function listeningPort(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let text = ''
    const onData = (chunk: Buffer) => {
      text += chunk.toString()
      const newline = text.indexOf('\n')
      if (newline === -1) return
      child.stdout?.off('data', onData)
      child.stdout?.resume()
      const line = JSON.parse(text.slice(0, newline)) as { port?: number }
      if (typeof line.port === 'number') resolve(line.port)
      else reject(new Error(`unexpected first line from the agent: ${text}`))
    }
    child.stdout?.on('data', onData)
    child.once('exit', (code) => reject(new Error(`the agent exited (${code}) before listening`)))
  })
}

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL')
  } catch {
    // gone
  }
}

/** Running, not merely a zombie nobody has reaped yet. */
async function alive(pid: number): Promise<boolean> {
  try {
    const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1] ?? ''
    return !fields.startsWith('Z')
  } catch {
    return false
  }
}

async function eventually(check: () => Promise<boolean>, ms = 3_000): Promise<boolean> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await check()) return true
    await new Promise((r) => setTimeout(r, 20))
  }
  return check()
}

async function bytes(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk)
  return Buffer.concat(chunks)
}

function rawGet(path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers }, (res) => {
      let body = ''
      res.on('data', (c: Buffer) => (body += c.toString()))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

describe('agent: auth and health', () => {
  it('answers health with the token, 401 without it or with a wrong one', async () => {
    const health = await client.health()
    expect(health).toMatchObject({ ok: true, pid: agent.pid })
    const none = await rawGet('/health')
    expect(none.status).toBe(401)
    expect(JSON.parse(none.body)).toMatchObject({ error: { code: 'unauthenticated' } })
    expect((await rawGet('/files/stat?path=/', { [AGENT_TOKEN_HEADER]: 'tok2' })).status).toBe(401)
    // The platform's own token refused is the platform's fault.
    const wrong = new AgentClient({ host: '127.0.0.1', port, token: 'nope' })
    await expectMiosaError(wrong.health(), 'internal')
    wrong.close()
  })

  it('is unavailable where no agent listens', async () => {
    const nobody = new AgentClient({ host: '127.0.0.1', port: 1, token: TOKEN })
    await expectMiosaError(nobody.stat('/'), 'unavailable')
    await expectMiosaError(nobody.waitUntilReady(50), 'unavailable')
    nobody.close()
  })
})

describe('agent: exec', () => {
  it('runs argv without a shell and reports exit code, stdout and stderr', async () => {
    const result = await client.exec({ argv: ['sh', '-c', 'echo "$1"; echo err >&2; exit 3', 'sh', 'a b; $(x)'], cwd: dir })
    expect(result).toMatchObject({ exit_code: 3, stdout: 'a b; $(x)\n', stderr: 'err\n', truncated: false, timed_out: false })
    expect((await client.exec({ argv: ['pwd'], cwd: dir })).stdout.trim()).toBe(dir)
  })

  it('passes stdin; a missing cwd or empty argv is invalid', async () => {
    const result = await client.exec({ argv: ['cat'], cwd: dir, stdin_base64: Buffer.from('piped').toString('base64') })
    expect(result.stdout).toBe('piped')
    await expectMiosaError(client.exec({ argv: ['true'], cwd: join(dir, 'missing') }), 'invalid')
    await expectMiosaError(client.exec({ argv: [], cwd: dir }), 'invalid')
  })

  it('answers 127 for a command that does not exist', async () => {
    const result = await client.exec({ argv: ['no-such-command-miosa'], cwd: dir })
    expect(result.exit_code).toBe(127)
    expect(result.stderr).toContain('command not found: no-such-command-miosa')
  })

  it('kills the process group on timeout: 124 and timed_out', async () => {
    const started = Date.now()
    const result = await client.exec({ argv: ['sh', '-c', 'sleep 30 & echo $!; sleep 30'], cwd: dir, timeout_ms: 300 })
    expect(Date.now() - started).toBeLessThan(3_000)
    expect(result).toMatchObject({ exit_code: 124, timed_out: true })
    const background = Number(result.stdout.trim())
    leftovers.push(background)
    // Gone by the time the exec answers.
    expect(await alive(background)).toBe(false)
  })

  it('truncates each stream at max_output_bytes', async () => {
    const result = await client.exec({ argv: ['sh', '-c', 'yes | head -c 5000; echo small >&2'], cwd: dir, max_output_bytes: 1000 })
    expect(result.stdout.length).toBe(1000)
    expect(result.stderr).toBe('small\n')
    expect(result.truncated).toBe(true)
    expect(result.exit_code).toBe(0)
  })

  it('adds env to the environment, without the agent token', async () => {
    const result = await client.exec({ argv: ['sh', '-c', 'echo "$FOO:${MIOSA_AGENT_TOKEN-unset}:${PATH:+path}"'], cwd: dir, env: { FOO: 'bar' } })
    expect(result.stdout).toBe('bar:unset:path\n')
  })

  it('answers when the command exits, killing what it left running, in its group or not', async () => {
    // 2000 lines (~130 KB) is more than a pipe holds: a writer left undrained would block for ever.
    const script = `sleep 30 & echo $!; setsid sleep 31 & echo $!; (i=0; while [ $i -lt 2000 ]; do echo xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done; sleep 32) & sleep 0.2; echo started`
    const started = Date.now()
    const result = await client.exec({ argv: ['sh', '-c', script], cwd: dir, max_output_bytes: 1000 })
    expect(Date.now() - started).toBeLessThan(2_000)
    expect(result.exit_code).toBe(0)
    const [sleeper, escaped] = result.stdout.split('\n').map(Number) as [number, number]
    leftovers.push(sleeper, escaped)
    expect(await alive(sleeper)).toBe(false)
    // Its own session, found as a child of the exec's shell.
    expect(await alive(escaped)).toBe(false)
  })

  it('keeps a service running after the request that started it', async () => {
    const started = await client.startService('sleeper', { argv: ['sleep', '30'], cwd: dir })
    leftovers.push(started.pid)
    await client.exec({ argv: ['true'], cwd: dir })
    expect(await alive(started.pid)).toBe(true)
    expect(await client.stopService('sleeper')).toBe(true)
    expect(await eventually(async () => !(await alive(started.pid)))).toBe(true)
  })

  it.skipIf(!IS_ROOT)('runs as the given uid and gid', async () => {
    const result = await client.exec({ argv: ['id', '-u'], cwd: dir, uid: 1000, gid: 1000 })
    expect(result.stdout.trim()).toBe('1000')
    const groups = await client.exec({ argv: ['id', '-G'], cwd: dir, uid: 1000 })
    expect(groups.stdout.trim()).toBe('1000')
  })

  it('streams output as it comes, with stdin fed while the command runs', async () => {
    let firstEcho: () => void = () => {}
    const echoed = new Promise<void>((r) => (firstEcho = r))
    const stdout: Buffer[] = []
    let chunksBeforeEnd = 0
    async function* input(): AsyncGenerator<Buffer> {
      yield Buffer.from('hello\n')
      await echoed
      chunksBeforeEnd = stdout.length
      yield Buffer.from('world\n')
    }
    const exit = await client.execStream(
      { argv: ['cat'], cwd: dir },
      {
        onStdout: (c) => {
          stdout.push(c)
          firstEcho()
        },
        onStderr: () => {},
        stdin: input(),
      },
    )
    expect(chunksBeforeEnd).toBeGreaterThan(0)
    expect(Buffer.concat(stdout).toString()).toBe('hello\nworld\n')
    expect(exit).toMatchObject({ type: 'exit', exit_code: 0, timed_out: false, truncated: false })
  })

  it('streams without stdin; stderr and the exit code come through', async () => {
    const stderr: Buffer[] = []
    const exit = await client.execStream({ argv: ['sh', '-c', 'echo oops >&2; exit 5'], cwd: dir }, { onStdout: () => {}, onStderr: (c) => stderr.push(c) })
    expect(Buffer.concat(stderr).toString()).toBe('oops\n')
    expect(exit.exit_code).toBe(5)
    const missing = await client.execStream({ argv: ['no-such-command-miosa'], cwd: dir }, { onStdout: () => {}, onStderr: () => {} })
    expect(missing.exit_code).toBe(127)
    await expectMiosaError(client.execStream({ argv: [], cwd: dir }, { onStdout: () => {}, onStderr: () => {} }), 'invalid')
  })

  it('streams with stdin_base64 from the request line', async () => {
    const stdout: Buffer[] = []
    const exit = await client.execStream(
      { argv: ['cat'], cwd: dir, stdin_base64: Buffer.from('given').toString('base64') },
      { onStdout: (c) => stdout.push(c), onStderr: () => {} },
    )
    expect(exit.exit_code).toBe(0)
    expect(Buffer.concat(stdout).toString()).toBe('given')
  })

  it('kills the command when the stream is aborted', async () => {
    const controller = new AbortController()
    let pid = 0
    const run = client.execStream(
      { argv: ['sh', '-c', 'echo $$; exec sleep 30'], cwd: dir },
      {
        onStdout: (c) => {
          pid = Number(c.toString().trim())
          controller.abort()
        },
        onStderr: () => {},
        signal: controller.signal,
      },
    )
    await expect(run).rejects.toThrow()
    expect(pid).toBeGreaterThan(0)
    leftovers.push(pid)
    expect(await eventually(async () => !(await alive(pid)))).toBe(true)
  })
})

describe('agent: files', () => {
  it('writes atomically (creating parents), reads, stats', async () => {
    const path = join(dir, 'files', 'a', 'b', 'hello.txt')
    const written = await client.writeFile(path, Buffer.from('hi there'))
    expect(written).toMatchObject({ name: 'hello.txt', path, type: 'file', size: 8, mode: 0o644 })
    expect(Date.parse(written.mtime)).not.toBeNaN()
    expect((await bytes(await client.readFile(path))).toString()).toBe('hi there')
    // No temp file left next to it.
    expect(await readdir(join(dir, 'files', 'a', 'b'))).toEqual(['hello.txt'])

    const streamed = await client.writeFile(path, Readable.from([Buffer.from('new '), Buffer.from('content')]), 0o600)
    expect(streamed).toMatchObject({ size: 11, mode: 0o600 })
    expect(await readFile(path, 'utf8')).toBe('new content')
    // Overwriting keeps the mode unless one is given.
    expect((await client.writeFile(path, Buffer.from('x'))).mode).toBe(0o600)

    const empty = join(dir, 'files', 'empty')
    await client.writeFile(empty, Buffer.alloc(0))
    expect((await bytes(await client.readFile(empty))).length).toBe(0)

    expect(await client.stat(join(dir, 'files', 'a'))).toMatchObject({ name: 'a', type: 'dir' })
    await expectMiosaError(client.stat(join(dir, 'files', 'missing')), 'not_found')
    await expectMiosaError(client.readFile(join(dir, 'files', 'missing')), 'not_found')
    await expectMiosaError(client.readFile(join(dir, 'files', 'a')), 'invalid')
    await expectMiosaError(client.writeFile(join(dir, 'files', 'a'), Buffer.from('x')), 'invalid')
  })

  it('lists sorted by name, with symlinks as symlinks', async () => {
    const base = join(dir, 'listing')
    await mkdir(join(base, 'sub'), { recursive: true })
    await writeFile(join(base, 'b.txt'), 'b')
    await writeFile(join(base, 'A.txt'), 'a')
    await client.exec({ argv: ['ln', '-s', 'b.txt', join(base, 'link')], cwd: dir })
    const entries = await client.list(base)
    expect(entries.map((e) => [e.name, e.type])).toEqual([
      ['A.txt', 'file'],
      ['b.txt', 'file'],
      ['link', 'symlink'],
      ['sub', 'dir'],
    ])
    expect(entries.find((e) => e.name === 'link')?.target).toBe('b.txt')
    await expectMiosaError(client.list(join(base, 'b.txt')), 'invalid')
  })

  it('makes directories with their parents; an existing one is fine, a file is a conflict', async () => {
    const path = join(dir, 'made', 'x', 'y')
    expect(await client.mkdir(path)).toMatchObject({ name: 'y', type: 'dir', path })
    expect(await client.mkdir(path)).toMatchObject({ type: 'dir' })
    await writeFile(join(dir, 'made', 'file'), '')
    await expectMiosaError(client.mkdir(join(dir, 'made', 'file')), 'conflict')
  })

  it('moves, refusing to overwrite unless asked', async () => {
    const base = join(dir, 'moving')
    await mkdir(base, { recursive: true })
    await writeFile(join(base, 'a'), 'A')
    await writeFile(join(base, 'b'), 'B')
    await expectMiosaError(client.move(join(base, 'a'), join(base, 'b'), false), 'conflict')
    expect(await client.move(join(base, 'a'), join(base, 'b'), true)).toMatchObject({ name: 'b', size: 1 })
    expect(await readFile(join(base, 'b'), 'utf8')).toBe('A')
    expect(await client.move(join(base, 'b'), join(base, 'nested', 'c'), false)).toMatchObject({ path: join(base, 'nested', 'c') })
    await expectMiosaError(client.move(join(base, 'missing'), join(base, 'd'), false), 'not_found')
    await expectMiosaError(client.move(base, join(base, 'nested', 'inside'), false), 'invalid')
  })

  it('removes files and directories; a non-empty one only when recursive', async () => {
    const base = join(dir, 'removing')
    await mkdir(join(base, 'full'), { recursive: true })
    await mkdir(join(base, 'empty'))
    await writeFile(join(base, 'full', 'f'), 'x')
    await client.remove(join(base, 'full', 'f'))
    expect(await readdir(join(base, 'full'))).toEqual([])
    await writeFile(join(base, 'full', 'f'), 'x')
    await expectMiosaError(client.remove(join(base, 'full')), 'conflict')
    await client.remove(join(base, 'empty'))
    await client.remove(join(base, 'full'), { recursive: true })
    expect(await readdir(base)).toEqual([])
    await expectMiosaError(client.remove(join(base, 'full')), 'not_found')
  })
})

describe('agent: archives', () => {
  it('downloads a directory as a tar and uploads it into another', async () => {
    const source = join(dir, 'archive-src')
    await mkdir(join(source, 'nested', 'deeper'), { recursive: true })
    await writeFile(join(source, 'top.txt'), 'top')
    await writeFile(join(source, 'nested', 'deeper', 'data.bin'), Buffer.from([0, 1, 2, 255]))
    await chmod(join(source, 'top.txt'), 0o755)
    const tar = await bytes(await client.downloadArchive(source))
    expect(tar.length).toBeGreaterThan(0)

    const target = join(dir, 'archive-dst', 'inside')
    await client.uploadArchive(target, Readable.from([tar]))
    expect(await readFile(join(target, 'top.txt'), 'utf8')).toBe('top')
    expect([...(await readFile(join(target, 'nested', 'deeper', 'data.bin')))]).toEqual([0, 1, 2, 255])
    expect((await stat(join(target, 'top.txt'))).mode & 0o111).not.toBe(0)

    await expectMiosaError(client.uploadArchive(join(dir, 'archive-bad'), Readable.from([Buffer.from('not a tar at all')])), 'invalid')
    await expectMiosaError(client.downloadArchive(join(dir, 'archive-missing')), 'not_found')
  })
})

describe.skipIf(!IS_ROOT)('agent: files as the sandbox user', () => {
  let owned: { agent: ChildProcess; port: number }
  let asUser: AgentClient
  let home: string

  beforeAll(async () => {
    owned = await startAgent({ MIOSA_AGENT_OWNER: `${OWNER.uid}:${OWNER.gid}` })
    asUser = new AgentClient({ host: '127.0.0.1', port: owned.port, token: TOKEN })
    await asUser.waitUntilReady(5_000)
    home = join(dir, 'user-home')
    await mkdir(home)
    await chown(home, OWNER.uid, OWNER.gid)
  })

  afterAll(() => {
    asUser?.close()
    owned?.agent.kill('SIGKILL')
  })

  it('refuses what the user may not read or write, naming the path', async () => {
    const secret = join(dir, 'root-only.txt')
    await writeFile(secret, 'secret', { mode: 0o600 })
    const read = await expectMiosaError(asUser.readFile(secret), 'forbidden')
    expect(read.message).toContain(secret)
    const write = await expectMiosaError(asUser.writeFile(join(dir, 'root-dir-file.txt'), Buffer.from('x')), 'forbidden')
    expect(write.message).toContain(join(dir, 'root-dir-file.txt'))
    await expectMiosaError(asUser.writeFile(secret, Buffer.from('x')), 'forbidden')
    expect(await readFile(secret, 'utf8')).toBe('secret')
  })

  it('writes what it may as the user: files and the directories it makes are theirs', async () => {
    const file = join(home, 'deep', 'er', 'file.txt')
    await asUser.writeFile(file, Buffer.from('x'))
    for (const p of [file, join(home, 'deep', 'er'), join(home, 'deep')]) expect(await stat(p)).toMatchObject(OWNER)
    expect((await bytes(await asUser.readFile(file))).toString()).toBe('x')
  })

  it('starts its file server again when something killed it', async () => {
    const ps = await client.exec({ argv: ['sh', '-c', `pgrep -u ${OWNER.uid} -f "${AGENT}" || true`] })
    for (const pid of ps.stdout.trim().split('\n').filter(Boolean).map(Number)) kill(pid)
    await new Promise((r) => setTimeout(r, 100))
    expect((await asUser.stat(home)).type).toBe('dir')
  })
})

describe('agent: files the kernel makes up', () => {
  it('reads /proc and /sys files to their end (their stat size says nothing), refuses devices', async () => {
    const status = (await bytes(await client.readFile('/proc/self/status'))).toString()
    expect(status).toMatch(/^Name:/)
    const cpu = await bytes(await client.readFile('/sys/devices/system/cpu/online'))
    expect(cpu.toString()).toMatch(/^\d/)
    await expectMiosaError(client.readFile('/dev/zero'), 'invalid')
  })
})
