import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cliAs } from '../helpers/cli.js'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'

// The flow of the product documents (Sandbox; Snapshots & persistence), run with the real
// `miosa` bin against a real platform on the real Docker Engine: create a Next.js sandbox,
// write a page, install and build, snapshot, fork, stop and resume, restore from the
// snapshot, destroy. Steps depend on each other, so they run in order in one test file.

let t: TestPlatform
let tmp: string
let key: string
const { miosa, json } = cliAs(() => ({ apiUrl: t.apiUrl, key: key, home: tmp }))

/** Runs a --json command that must succeed, and answers its document. (--json goes before a `--`: after it, it would be part of the command.) */
beforeAll(async () => {
  t = await startTestPlatform()
  key = (await t.newOrganization('Seed Flow Org')).key
  tmp = await mkdtemp(join(tmpdir(), 'miosa-cli-sandbox-'))
}, 60_000)

afterAll(async () => {
  await t?.close()
  if (tmp !== undefined) await rm(tmp, { recursive: true, force: true })
}, 120_000)

describe.sequential('the sandbox flow of the product documents, through the CLI', () => {
  let sandbox: any
  let snapshot: any

  it('creates a Next.js sandbox and waits until it is running', async () => {
    sandbox = await json(['sandbox', 'create', '--template', 'nextjs', '--name', 'my-agent-workspace', '--timeout', '1h', '--wait'])
    expect(sandbox).toMatchObject({ name: 'my-agent-workspace', template: 'nextjs', state: 'running', persistent: true, timeout_seconds: 3600 })
    const listed = await json(['sandbox', 'list', '--state', 'running'])
    expect(listed.data.map((s: any) => s.id)).toContain(sandbox.id)
  }, 120_000)

  it('writes a page from a local file and reads it back', async () => {
    const page = join(tmp, 'page.jsx')
    await writeFile(page, 'export default function Page() { return <h1>Written by the agent</h1> }\n')
    const written = await json(['sandbox', 'write-file', sandbox.id, '/workspace/app/page.jsx', page])
    expect(written).toMatchObject({ path: '/workspace/app/page.jsx', type: 'file' })
    const read = await miosa(['sandbox', 'read-file', sandbox.id, '/workspace/app/page.jsx'])
    expect(read.stdout).toContain('Written by the agent')
    const saved = join(tmp, 'back.jsx')
    await json(['sandbox', 'read-file', sandbox.id, 'app/page.jsx', saved])
    expect(await readFile(saved, 'utf8')).toBe(await readFile(page, 'utf8'))
  })

  it('uploads a local directory and downloads it back, file for file', async () => {
    const local = join(tmp, 'public')
    await mkdir(join(local, 'img'), { recursive: true })
    await writeFile(join(local, 'robots.txt'), 'User-agent: *\n')
    await writeFile(join(local, 'img', 'dot.bin'), Buffer.from([0, 1, 2, 255]))
    const uploaded = await json(['sandbox', 'upload', sandbox.id, local, '/workspace/public'])
    expect(uploaded).toMatchObject({ path: '/workspace/public', type: 'dir' })
    const listed = await json(['sandbox', 'ls', sandbox.id, '/workspace/public'])
    expect(listed.entries.map((e: any) => e.name)).toEqual(['img', 'robots.txt'])
    const back = join(tmp, 'public-back')
    expect(await json(['sandbox', 'download', sandbox.id, '/workspace/public', back])).toMatchObject({ files: 2 })
    expect(await readFile(join(back, 'img', 'dot.bin'))).toEqual(Buffer.from([0, 1, 2, 255]))
    expect(await readFile(join(back, 'robots.txt'), 'utf8')).toBe('User-agent: *\n')
  })

  it('installs dependencies and builds the app with exec', async () => {
    const install = await json(['sandbox', 'exec', sandbox.id, '--timeout', '5m', '--', 'sh', '-lc', 'cd /workspace && npm install --no-audit --no-fund'])
    expect(install.exit_code, install.stderr).toBe(0)
    const build = await json(['sandbox', 'exec', sandbox.id, '--timeout', '5m', '--', 'sh', '-lc', 'cd /workspace && npm run build'])
    expect(build.exit_code, build.stdout + build.stderr).toBe(0)
    expect(build.stdout).toMatch(/Compiled successfully|Generating static pages/)
  }, 360_000)

  it("exits with the command's own exit code and streams its output without --json", async () => {
    const failed = await miosa(['sandbox', 'exec', sandbox.id, '--', 'echo out; echo err >&2; exit 3'])
    expect(failed).toMatchObject({ code: 3, stdout: 'out\n', stderr: 'err\n' })
    const piped = await miosa(['sandbox', 'exec', sandbox.id, '--', 'tr', 'a-z', 'A-Z'], 'shout\n')
    expect(piped).toMatchObject({ code: 0, stdout: 'SHOUT\n' })
  })

  it('takes a named snapshot and lists it', async () => {
    snapshot = await json(['sandbox', 'snapshot', sandbox.id, '--name', 'after dependencies installed'])
    expect(snapshot).toMatchObject({ name: 'after dependencies installed', sandbox_id: sandbox.id, state: 'ready' })
    const listed = await json(['sandbox', 'snapshots', 'list', sandbox.id])
    expect(listed.data.map((s: any) => s.id)).toEqual([snapshot.id])
    expect((await json(['sandbox', 'get', sandbox.id])).state).toBe('running')
  }, 120_000)

  it('forks the sandbox: the fork has its files, and changes on either side stay there', async () => {
    const fork = await json(['sandbox', 'fork', sandbox.id, '--name', 'my-agent-workspace-auth-branch'])
    expect(fork).toMatchObject({ name: 'my-agent-workspace-auth-branch', state: 'running' })
    expect(fork.id).not.toBe(sandbox.id)
    await json(['sandbox', 'exec', fork.id, '--', 'echo fork-only > /workspace/branch.txt'])
    const inFork = await json(['sandbox', 'exec', fork.id, '--', 'cat app/page.jsx && test -d node_modules/next && echo has-deps'])
    expect(inFork.stdout).toContain('Written by the agent')
    expect(inFork.stdout).toContain('has-deps')
    const inOriginal = await json(['sandbox', 'exec', sandbox.id, '--', 'test -e branch.txt && echo leaked || echo separate'])
    expect(inOriginal.stdout).toBe('separate\n')
    await json(['sandbox', 'destroy', fork.id])
  }, 120_000)

  it('stops the sandbox keeping its files, and resumes it with every file in place', async () => {
    expect((await json(['sandbox', 'stop', sandbox.id])).state).toBe('paused')
    expect((await json(['sandbox', 'resume', sandbox.id])).state).toBe('running')
    const files = await json(['sandbox', 'exec', sandbox.id, '--', 'cat app/page.jsx && test -d .next && echo built'])
    expect(files.stdout).toContain('Written by the agent')
    expect(files.stdout).toContain('built')
  }, 60_000)

  it('creates a replacement sandbox from the snapshot', async () => {
    await json(['sandbox', 'exec', sandbox.id, '--', 'rm -rf app node_modules'])
    const restored = await json(['sandbox', 'create', '--snapshot', snapshot.id, '--name', 'my-agent-workspace-restored', '--timeout', '1h', '--wait'])
    expect(restored).toMatchObject({ name: 'my-agent-workspace-restored', state: 'running', template: 'nextjs' })
    const files = await json(['sandbox', 'exec', restored.id, '--', 'cat app/page.jsx && test -d node_modules/next && echo has-deps'])
    expect(files.stdout).toContain('Written by the agent')
    expect(files.stdout).toContain('has-deps')
    await json(['sandbox', 'destroy', restored.id])
  }, 120_000)

  it('destroys the sandbox for good; its snapshot stays', async () => {
    expect((await json(['sandbox', 'destroy', sandbox.id])).state).toBe('destroyed')
    const gone = await miosa(['sandbox', 'exec', sandbox.id, '--json', '--', 'true'])
    expect(gone.code).toBe(1)
    expect(JSON.parse(gone.stderr).error.code).toMatch(/conflict|not_found/)
    expect((await json(['sandbox', 'snapshots', 'get', snapshot.id])).id).toBe(snapshot.id)
    await json(['sandbox', 'snapshots', 'delete', snapshot.id])
  }, 60_000)
})

describe('sandbox commands refuse bad input clearly', () => {
  it('names the unknown template', async () => {
    const result = await miosa(['sandbox', 'create', '--template', 'cobol', '--json'])
    expect(result.code).toBe(1)
    expect(JSON.parse(result.stderr).error).toMatchObject({ code: 'invalid' })
    expect(result.stderr).toContain('cobol')
  })

  it('refuses a malformed timeout and names the flag', async () => {
    const result = await miosa(['sandbox', 'create', '--timeout', 'soon', '--json'])
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('timeout')
  })

  it('lists templates with whether each is built', async () => {
    const templates = await json(['templates', 'list'])
    const names = templates.data.map((x: any) => x.name)
    expect(names).toEqual(expect.arrayContaining(['miosa-sandbox', 'node', 'nextjs', 'python', 'static']))
    expect(templates.data.find((x: any) => x.name === 'node').built).toBe(true)
  })
})

describe('trusted certificates inside a sandbox', () => {
  it('installs an npm package over HTTPS with the injected CA bundle', async () => {
    const node = await json(['sandbox', 'create', '--template', 'node', '--non-persistent', '--wait'])
    const script = 'mkdir -p /tmp/ca && cd /tmp/ca && npm init -y >/dev/null && npm install is-number@7 --no-audit --no-fund && node -e "console.log(require(\'is-number\')(5))"'
    const result = await json(['sandbox', 'exec', node.id, '--timeout', '2m', '--', script])
    expect(result.exit_code, result.stderr).toBe(0)
    expect(result.stdout).toMatch(/added 1 package[\s\S]*true\n$/)
    await json(['sandbox', 'destroy', node.id])
  }, 180_000)
})
