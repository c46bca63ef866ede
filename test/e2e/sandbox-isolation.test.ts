import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { rm, writeFile } from 'node:fs/promises'
import { networkInterfaces } from 'node:os'
import { Readable } from 'node:stream'
import { Header } from 'tar'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'

// What a sandbox must never reach: the host's files (through paths, symlinks or archive
// entries), the platform's API port, the Docker socket, or another workspace's sandboxes.

let t: TestPlatform
let key: string
let sandbox: any
const marker = `/tmp/miosa-host-marker-${randomBytes(6).toString('hex')}`

beforeAll(async () => {
  // Listening on every address, so "unreachable" below is the firewall's doing, not the bind address's.
  t = await startTestPlatform({ host: '0.0.0.0' })
  key = (await t.newOrganization('Isolation Org')).key
  await writeFile(marker, 'host secret')
  const res = await t.call('POST', '/api/v1/sandboxes?wait=true', { key, body: { template: 'node', name: 'isolated' } })
  expect(res.json.state, res.text).toBe('running')
  sandbox = res.json
}, 120_000)

afterAll(async () => {
  await rm(marker, { force: true })
  await t?.close()
}, 120_000)

const exec = async (cmd: string) => (await t.call('POST', `/api/v1/sandboxes/${sandbox.id}/exec`, { key, body: { cmd } })).json

async function http(method: string, path: string, body?: Buffer): Promise<{ status: number; text: string }> {
  const res = await fetch(`${t.apiUrl}/api/v1/sandboxes/${sandbox.id}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/octet-stream' }) },
    ...(body === undefined ? {} : { body }),
  })
  return { status: res.status, text: await res.text() }
}

/** A tar archive with exactly these entries, built by hand so it can hold what tar tools refuse to write. */
function tarOf(entries: { path: string; type?: 'File' | 'SymbolicLink' | 'Link'; linkpath?: string; body?: string }[]): Buffer {
  const blocks: Buffer[] = []
  for (const entry of entries) {
    const body = Buffer.from(entry.body ?? '')
    const header = new Header({
      path: entry.path,
      type: entry.type ?? 'File',
      size: entry.type === undefined || entry.type === 'File' ? body.length : 0,
      mode: 0o644,
      mtime: new Date(),
      ...(entry.linkpath === undefined ? {} : { linkpath: entry.linkpath }),
    })
    const block = Buffer.alloc(512)
    header.encode(block, 0)
    blocks.push(block)
    if (header.size !== undefined && header.size > 0) {
      blocks.push(body, Buffer.alloc((512 - (body.length % 512)) % 512))
    }
  }
  blocks.push(Buffer.alloc(1024))
  return Buffer.concat(blocks)
}

describe('paths never leave the sandbox', () => {
  it('reads of host paths, dot-dot tricks and symlinks find only the sandbox\'s own files', async () => {
    await exec(`ln -sf ${marker} /workspace/link-to-host && ln -sf /proc/1/root${marker} /workspace/proc-link`)
    for (const path of [marker, `../../..${marker}`, `/workspace/../../..${marker}`, '/workspace/link-to-host', '/workspace/proc-link', `/proc/self/root${marker}`]) {
      const res = await http('GET', `/files?path=${encodeURIComponent(path)}`)
      // 404, or 403 where the sandbox user may not look (/proc/1/root is PID 1's, root's).
      expect([403, 404], path).toContain(res.status)
      expect(res.text).not.toContain('host secret')
    }
  })

  it('writes through dot-dot and symlinks land inside the sandbox, never on the host', async () => {
    const target = `${marker}-written`
    const res = await http('PUT', `/files?path=${encodeURIComponent(`../../..${target}`)}`, Buffer.from('from the sandbox'))
    expect(res.status).toBe(200)
    expect(existsSync(target)).toBe(false)
    expect((await exec(`cat ${target}`)).stdout).toBe('from the sandbox')
  })

  it.each([
    ['a dot-dot entry', [{ path: '../escaped.txt', body: 'x' }]],
    ['an absolute entry', [{ path: '/escaped.txt', body: 'x' }]],
    ['a symlink out, then a file through it', [{ path: 'out', type: 'SymbolicLink' as const, linkpath: '/etc' }, { path: 'out/escaped.txt', body: 'x' }]],
    ['a relative symlink out', [{ path: 'up', type: 'SymbolicLink' as const, linkpath: '../../..' }]],
    ['a hard link out', [{ path: 'hard', type: 'Link' as const, linkpath: '../../etc/shadow' }]],
  ])('refuses an archive with %s, writing nothing at all', async (_what, entries) => {
    const archive = tarOf([{ path: 'fine.txt', body: 'fine' }, ...entries])
    const res = await fetch(`${t.apiUrl}/api/v1/sandboxes/${sandbox.id}/archive?path=/workspace/upload-target`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/x-tar' },
      body: Readable.toWeb(Readable.from([archive])) as ReadableStream,
      duplex: 'half',
    } as RequestInit)
    expect(res.status).toBe(400)
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/refused/)
    expect((await exec('test -e /workspace/upload-target || echo nothing; test -e /workspace/escaped.txt || test -e /escaped.txt || echo clean')).stdout).toBe('nothing\nclean\n')
  })
})

describe('the network around a sandbox', () => {
  const probe = (host: string, port: number) =>
    `node -e "const s=require('net').connect(${port},'${host}');s.setTimeout(2000);s.on('connect',()=>{console.log('connected');process.exit(0)});s.on('timeout',()=>{console.log('blocked');process.exit(0)});s.on('error',e=>{console.log('blocked',e.code);process.exit(0)})"`

  it("cannot reach the platform's API port on any host address", async () => {
    const apiPort = Number(new URL(t.apiUrl).port)
    // The gateway of the sandbox's network is the host's nearest address.
    const gateway = (await exec(`node -e "const l=require('fs').readFileSync('/proc/net/route','utf8').split('\\n').find(l=>l.split('\\t')[1]==='00000000');const h=l.split('\\t')[2];console.log([3,2,1,0].map(i=>parseInt(h.substr(i*2,2),16)).join('.'))"`)).stdout.trim()
    expect(gateway).toMatch(/^\d+\.\d+\.\d+\.\d+$/)
    const hostAddresses = Object.values(networkInterfaces()).flat().filter((a) => a !== undefined && a.family === 'IPv4' && !a.internal).map((a) => a!.address)
    for (const address of [gateway, ...hostAddresses]) {
      expect((await exec(probe(address, apiPort))).stdout, address).toMatch(/^blocked/)
    }
    // The API does answer on those addresses from the host itself: the block is the sandbox's.
    expect((await fetch(`http://${hostAddresses[0] ?? '127.0.0.1'}:${apiPort}/healthz`)).status).toBe(200)
  })

  it('has no Docker socket and cannot reach the Docker daemon', async () => {
    expect((await exec('test -e /var/run/docker.sock || test -e /run/docker.sock || echo absent')).stdout).toBe('absent\n')
  })

  it("cannot open a TCP connection to another workspace's sandbox", async () => {
    const other = await t.call('POST', '/api/v1/workspaces', { key, body: { name: 'Other Workspace' } })
    const created = await t.call('POST', '/api/v1/sandboxes?wait=true', { key, body: { template: 'node', workspace_id: other.json.id } })
    expect(created.json.state, created.text).toBe('running')
    const b = created.json
    // A service: what an exec starts ends with it.
    await t.call('POST', `/api/v1/sandboxes/${b.id}/services`, { key, body: { cmd: ['node', '-e', "require('net').createServer(s=>s.end('hi')).listen(4000)"] } })
    await t.call('POST', `/api/v1/sandboxes/${b.id}/exec`, { key, body: { cmd: 'sleep 0.5' } })
    const address = (await t.call('POST', `/api/v1/sandboxes/${b.id}/exec`, { key, body: { cmd: `node -p "require('os').networkInterfaces().eth0[0].address"` } })).json.stdout.trim()
    expect((await exec(probe(address, 4000))).stdout).toMatch(/^blocked/)
    // The same probe from inside b's own workspace connects: the block is between workspaces.
    const self = await t.call('POST', `/api/v1/sandboxes/${b.id}/exec`, { key, body: { cmd: probe(address, 4000) } })
    expect(self.json.stdout).toBe('connected\n')
  }, 60_000)
})
