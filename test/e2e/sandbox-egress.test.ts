import { execFile } from 'node:child_process'
import { lookup } from 'node:dns/promises'
import { promisify } from 'node:util'
import Docker from 'dockerode'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LABEL } from '../../src/runtime/docker/container-spec.js'
import { runCli } from '../helpers/cli.js'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'

// A sandbox's egress policy against real Docker and real iptables: a sandbox without
// internet cannot reach Debian's archive (the host its own apt sources name) while an
// open one can, an allow-list opens exactly what it names, and the host's rules follow
// the sandbox through a warm-pool claim, stop, resume, fork, a lost rule set and destroy.

let t: TestPlatform
let key: string
const docker = new Docker()
const run = promisify(execFile)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** The archive host, as the template's apt sources name it, and one of its IPv4 addresses. */
let archive: { host: string; ip: string }
let open: any
let closed: any

beforeAll(async () => {
  // A warm pool, so a restricted sandbox below is made from a container started before anyone knew its policy.
  t = await startTestPlatform({ sandboxWarmPool: 1 })
  key = (await t.newOrganization('Egress Org')).key
  open = await create({ name: 'open' })
  const sources = await exec(open.id, 'cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null; true')
  const url = /https?:\/\/[^\s/]+/.exec(sources.stdout)?.[0]
  expect(url, sources.stdout).toBeDefined()
  const host = new URL(url as string).hostname
  const [first] = await lookup(host, { all: true, family: 4 })
  archive = { host, ip: first?.address as string }
}, 120_000)

afterAll(async () => {
  await t?.close()
}, 120_000)

async function create(body: Record<string, unknown>): Promise<any> {
  const res = await t.call('POST', '/api/v1/sandboxes?wait=true', { key, body: { template: 'node', persistent: true, ...body } })
  expect(res.status, res.text).toBe(201)
  expect(res.json.state, res.text).toBe('running')
  return res.json
}

async function exec(id: string, cmd: string): Promise<{ exit_code: number; stdout: string; stderr: string }> {
  const res = await t.call('POST', `/api/v1/sandboxes/${id}/exec`, { key, body: { cmd } })
  expect(res.status, res.text).toBe(200)
  return res.json
}

/** A TCP connection from inside the sandbox: 'connected', or 'blocked' with the error (a 3 s timeout counts as blocked). */
async function probe(id: string, host: string, port = 80): Promise<string> {
  const script =
    `const s=require('net').connect(${port},'${host}');s.setTimeout(3000);` +
    `s.on('connect',()=>{console.log('connected');process.exit(0)});` +
    `s.on('timeout',()=>{console.log('blocked timeout');process.exit(0)});` +
    `s.on('error',e=>{console.log('blocked',e.code);process.exit(0)})`
  return (await exec(id, `node -e "${script}"`)).stdout.trim()
}

async function containerOf(id: string): Promise<string> {
  const [record] = await t.platform.store.sandboxes.findByIds([id])
  return record?.runtime_ref?.id as string
}

/** The host's iptables rules that name the container's egress chain. */
async function rulesOf(containerId: string): Promise<string[]> {
  const { stdout } = await run('iptables', ['-w', '5', '-S'])
  return stdout.split('\n').filter((l) => l.includes(`MIOSA-EG-${containerId.slice(0, 12)}-`))
}

/** Sandbox ids of this platform's containers that no record has yet: the warm pool's, once their agent listens. */
async function pooledIds(): Promise<string[]> {
  const containers = await docker.listContainers({ filters: { label: [`${LABEL.platform}=${t.platformId}`, `${LABEL.kind}=sandbox`] } })
  const ids = containers.map((c) => c.Labels[LABEL.sandbox] as string)
  const known = new Set((await t.platform.store.sandboxes.findByIds(ids)).map((s) => s.id))
  const ready: string[] = []
  for (const c of containers) {
    if (known.has(c.Labels[LABEL.sandbox] as string)) continue
    const logs = await docker.getContainer(c.Id).logs({ stdout: true, stderr: true })
    if (logs.toString('utf8').includes('miosa agent listening')) ready.push(c.Labels[LABEL.sandbox] as string)
  }
  return ready
}

describe.sequential('egress policy', () => {
  it('an open sandbox reaches the archive; one with allow_internet false, made from a warm container, does not, yet resolves names', async () => {
    expect(open.allow_internet).toBe(true)
    expect(open.egress).toBeNull()
    expect(await probe(open.id, archive.host)).toBe('connected')

    let warm: string[] = []
    for (let i = 0; i < 150 && warm.length === 0; i++) {
      warm = await pooledIds()
      if (warm.length === 0) await sleep(200)
    }
    expect(warm.length, 'the warm pool filled').toBeGreaterThan(0)
    await sleep(300) // the pool takes it in once its agent answers the platform
    closed = await create({ name: 'closed', allow_internet: false })
    expect(warm).toContain(closed.id)
    expect(closed.allow_internet).toBe(false)
    expect(closed.egress).toEqual({ allow: [] })
    expect((await t.call('GET', `/api/v1/sandboxes/${closed.id}`, { key })).json).toMatchObject({ allow_internet: false, egress: { allow: [] } })

    expect(await probe(closed.id, archive.host)).toMatch(/^blocked/)
    expect(await probe(closed.id, archive.ip)).toMatch(/^blocked/)
    // Docker's embedded resolver still answers it.
    expect((await exec(closed.id, `getent hosts ${archive.host}`)).stdout).toMatch(/^\d+\.\d+\.\d+\.\d+\s/)
    expect(await rulesOf(await containerOf(closed.id))).not.toEqual([])
  }, 120_000)

  it('still reaches sandboxes of its own workspace', async () => {
    // A service: what an exec starts ends with it.
    const service = await t.call('POST', `/api/v1/sandboxes/${open.id}/services`, { key, body: { cmd: `node -e "require('net').createServer(s=>{s.on('error',()=>{});s.end('hi')}).listen(4000)"` } })
    expect(service.status, service.text).toBe(201)
    const listening = `node -e "require('net').connect(4000, '127.0.0.1').on('connect', () => process.exit(0)).on('error', () => process.exit(1))"`
    expect((await exec(open.id, `for i in $(seq 50); do ${listening} && exit 0; sleep 0.1; done; exit 1`)).exit_code).toBe(0)
    const address = (await exec(open.id, `node -p "require('os').networkInterfaces().eth0[0].address"`)).stdout.trim()
    const answer = await probe(closed.id, address, 4000)
    if (answer !== 'connected') console.log(address, (await exec(open.id, 'cat /proc/net/tcp; cat /tmp/miosa-services/*.log')).stdout)
    expect(answer).toBe('connected')
  }, 60_000)

  it('cannot lift its own rules: nothing in it, root included, holds NET_ADMIN', async () => {
    const NET_ADMIN = 1n << 12n
    const status = (await exec(closed.id, 'cat /proc/1/status /proc/self/status')).stdout
    const sets = [...status.matchAll(/^Cap(Bnd|Eff|Prm):\s+([0-9a-f]+)$/gm)].map((m) => BigInt(`0x${m[2]}`))
    expect(sets.length).toBe(6)
    for (const set of sets) expect(set & NET_ADMIN).toBe(0n)
    // And what it can do as its user does not get it out.
    await exec(closed.id, 'ip route del default 2>/dev/null; iptables -F 2>/dev/null; true')
    expect(await probe(closed.id, archive.host)).toMatch(/^blocked/)
  }, 60_000)

  it('an allow-list opens the hosts and CIDRs it names, and nothing else', async () => {
    const byHost = await create({ name: 'by-host', egress: { allow: [archive.host] } })
    expect(byHost).toMatchObject({ allow_internet: false, egress: { allow: [archive.host] } })
    expect(await probe(byHost.id, archive.host)).toBe('connected')

    const byCidr = await create({ name: 'by-cidr', allow_internet: false, egress: { allow: [`${archive.ip}/32`, '198.51.100.0/24'] } })
    expect(await probe(byCidr.id, archive.ip)).toBe('connected')
    const elsewhere = await create({ name: 'elsewhere', egress: { allow: ['198.51.100.0/24'] } })
    expect(await probe(elsewhere.id, archive.ip)).toMatch(/^blocked/)
    for (const s of [byHost, byCidr, elsewhere]) await t.call('DELETE', `/api/v1/sandboxes/${s.id}`, { key })
  }, 120_000)

  it('keeps its rules across stop and resume, and a fork inherits the policy', async () => {
    const container = await containerOf(closed.id)
    expect((await t.call('POST', `/api/v1/sandboxes/${closed.id}/stop`, { key })).json.state).toBe('paused')
    // A stopped container's address goes to the next one: its rules go with it.
    expect(await rulesOf(container)).toEqual([])
    const resumed = await t.call('POST', `/api/v1/sandboxes/${closed.id}/resume`, { key })
    expect(resumed.json).toMatchObject({ state: 'running', allow_internet: false })
    expect(await rulesOf(container)).not.toEqual([])
    expect(await probe(closed.id, archive.host)).toMatch(/^blocked/)

    const fork = await t.call('POST', `/api/v1/sandboxes/${closed.id}/fork`, { key, body: { name: 'closed fork' } })
    expect(fork.status, fork.text).toBe(201)
    expect(fork.json).toMatchObject({ allow_internet: false, egress: { allow: [] } })
    for (let i = 0; i < 100 && (await t.call('GET', `/api/v1/sandboxes/${fork.json.id}`, { key })).json.state !== 'running'; i++) await sleep(200)
    expect(await probe(fork.json.id, archive.host)).toMatch(/^blocked/)
    await t.call('DELETE', `/api/v1/sandboxes/${fork.json.id}`, { key })
  }, 120_000)

  it('a platform restart puts back the rules the host lost (a reboot, a flush) before it serves', async () => {
    const container = await containerOf(closed.id)
    const rules = await rulesOf(container)
    const chain = rules.find((l) => l.startsWith('-N '))?.slice(3) as string
    const jump = rules.find((l) => l.startsWith('-A DOCKER-USER'))?.slice(3).split(' ') as string[]
    await run('iptables', ['-w', '5', '-D', ...jump])
    await run('iptables', ['-w', '5', '-F', chain])
    await run('iptables', ['-w', '5', '-X', chain])
    expect(await probe(closed.id, archive.host)).toBe('connected')
    await t.close({ keep: true })
    t = await startTestPlatform({ dataDir: t.dataDir, sandboxWarmPool: 1 })
    expect(await rulesOf(container)).toEqual(rules)
    expect(await probe(closed.id, archive.host)).toMatch(/^blocked/)
  }, 120_000)

  it('a container stopped behind the platform\'s back loses its rules at the next pass, and gets them again on resume', async () => {
    const container = await containerOf(closed.id)
    await docker.getContainer(container).stop({ t: 0 })
    expect(await rulesOf(container)).not.toEqual([])
    await t.platform.reconciler.reconcile()
    expect(await rulesOf(container)).toEqual([])
    expect((await t.call('GET', `/api/v1/sandboxes/${closed.id}`, { key })).json.state).toBe('paused')
    expect(await probe(closed.id, archive.host)).toMatch(/^blocked/) // the exec resumes it first
    expect(await rulesOf(container)).not.toEqual([])
  }, 60_000)

  it('destroy removes its rules', async () => {
    const container = await containerOf(closed.id)
    await t.call('DELETE', `/api/v1/sandboxes/${closed.id}`, { key })
    expect(await rulesOf(container)).toEqual([])
  }, 60_000)
})

describe('egress input', () => {
  it.each([
    [{ egress: { allow: ['10.0.0.0/33'] } }, 'egress.allow.0'],
    [{ egress: { allow: ['10.0.0.0/8', 'not a host!'] } }, 'egress.allow.1'],
    [{ egress: { allow: ['2001:db8::/32'] } }, 'egress.allow.0'],
    [{ egress: { allow: ['300.1.2.3'] } }, 'egress.allow.0'],
    [{ allow_internet: true, egress: { allow: ['10.0.0.0/8'] } }, 'egress'],
    [{ egress: { deny: ['10.0.0.0/8'] } }, 'egress.deny'],
    [{ allow_internet: 'no' }, 'allow_internet'],
  ])('refuses %j with a 400 naming %s, creating nothing', async (body, field) => {
    const before = (await t.call('GET', '/api/v1/sandboxes', { key })).json.data.length
    const res = await t.call('POST', '/api/v1/sandboxes', { key, body: { template: 'node', ...body } })
    expect(res.status, res.text).toBe(400)
    expect(res.json.error.code).toBe('invalid')
    expect(res.json.error.message).toContain(`${field}:`)
    expect((await t.call('GET', '/api/v1/sandboxes', { key })).json.data.length).toBe(before)
  })

  it('the CLI takes --no-internet and --allow-egress, and names a bad target', async () => {
    const env = { MIOSA_API_URL: t.apiUrl, MIOSA_API_KEY: key }
    const bad = await runCli(['sandbox', 'create', '--template', 'node', '--allow-egress', '10.0.0.0/40', '--json'], { env })
    expect(bad.code).not.toBe(0)
    expect(bad.stderr).toContain('egress.allow.0')
    const made = await runCli(['sandbox', 'create', '--template', 'node', '--no-internet', '--allow-egress', '10.1.0.0/16', '--allow-egress', 'Mirror.Example.org', '--json'], { env })
    expect(made.code, made.stderr).toBe(0)
    const sandbox = JSON.parse(made.stdout)
    expect(sandbox).toMatchObject({ allow_internet: false, egress: { allow: ['10.1.0.0/16', 'mirror.example.org'] } })
    await t.call('DELETE', `/api/v1/sandboxes/${sandbox.id}`, { key })
  }, 60_000)
})
