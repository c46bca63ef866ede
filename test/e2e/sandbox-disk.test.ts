import { execFileSync } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'

// Disk per sandbox is bounded by measuring (overlay2 on ext4 has no per-container size):
// past the platform's limit, file-API writes and archive uploads answer 413 naming the
// limit and the use, exec keeps working so files can be deleted, and a new measure under
// the limit lets writes through again. Measures are triggered directly (sweep) or follow a
// file-API write; the periodic interval is set long so it never runs in between.

const MB = 1024 * 1024
const LIMIT_MB = 50

let t: TestPlatform
let key: string
let sandbox: any
let tarDir: string
let tarball: Buffer

beforeAll(async () => {
  t = await startTestPlatform({ sandboxDiskMb: LIMIT_MB, sandboxDiskIntervalMs: 600_000 })
  key = (await t.newOrganization('Disk Org')).key
  const res = await t.call('POST', '/api/v1/sandboxes?wait=true', { key, body: { template: 'static', name: 'disk' } })
  expect(res.json.state, res.text).toBe('running')
  sandbox = res.json
  tarDir = await mkdtemp(join(tmpdir(), 'miosa-disk-'))
  await writeFile(join(tarDir, 'small.txt'), 'small')
  tarball = execFileSync('tar', ['-c', '-C', tarDir, 'small.txt'])
}, 120_000)

afterAll(async () => {
  await t?.close()
  if (tarDir !== undefined) await rm(tarDir, { recursive: true, force: true })
}, 120_000)

const exec = async (cmd: string) => (await t.call('POST', `/api/v1/sandboxes/${sandbox.id}/exec`, { key, body: { cmd } })).json
const disk = async () => (await t.call('GET', `/api/v1/sandboxes/${sandbox.id}`, { key })).json.disk
/** One measure of every running sandbox, timed. */
const measure = async () => {
  const started = Date.now()
  await t.platform.services.sandboxDisk.sweep()
  return Date.now() - started
}

async function put(route: 'files' | 'archive', path: string, body: Buffer): Promise<{ status: number; json: any }> {
  const res = await fetch(`${t.apiUrl}/api/v1/sandboxes/${sandbox.id}/${route}?path=${encodeURIComponent(path)}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${key}`, 'content-type': route === 'files' ? 'application/octet-stream' : 'application/x-tar' },
    body,
    signal: AbortSignal.timeout(30_000),
  })
  const text = await res.text()
  return { status: res.status, json: text === '' ? undefined : JSON.parse(text) }
}

async function until<T>(what: () => Promise<T>, ok: (value: T) => boolean, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await what()
    if (ok(value) || Date.now() > deadline) return value
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

function expectRefused(res: { status: number; json: any }): void {
  expect(res.status, JSON.stringify(res.json)).toBe(413)
  expect(res.json.error).toMatchObject({
    code: 'payload_too_large',
    message: expect.stringContaining(`over its ${LIMIT_MB} MB limit`),
    details: { resource: 'disk', limit_bytes: LIMIT_MB * MB, used_bytes: expect.any(Number) },
  })
  expect(res.json.error.details.used_bytes).toBeGreaterThan(LIMIT_MB * MB)
}

describe('disk per sandbox', () => {
  it('filled by exec: writes are refused after a measure, exec still works, and deleting lets writes through again', async () => {
    expect((await put('files', '/workspace/before.txt', Buffer.from('before'))).status).toBe(200)
    const fill = await exec(`dd if=/dev/zero of=/workspace/big bs=1M count=${LIMIT_MB + 10} status=none && echo filled`)
    expect(fill.stdout, fill.stderr).toBe('filled\n')
    const ms = await measure()
    console.log(`measuring one sandbox with ${LIMIT_MB + 10} MB in its writable layer: ${ms} ms`)

    const over = await disk()
    expect(over).toMatchObject({ limit_bytes: LIMIT_MB * MB, exceeded: true })
    expect(over.used_bytes).toBeGreaterThan((LIMIT_MB + 10) * MB)
    expectRefused(await put('files', '/workspace/after.txt', Buffer.from('after')))
    expectRefused(await put('archive', '/workspace', tarball))
    expect((await exec('ls -d /workspace/after.txt /workspace/small.txt 2>/dev/null | wc -l')).stdout).toBe('0\n')

    const cleaned = await exec('rm /workspace/big && echo removed')
    expect(cleaned.stdout, cleaned.stderr).toBe('removed\n')
    await measure()
    expect(await disk()).toMatchObject({ exceeded: false })
    expect((await put('files', '/workspace/after.txt', Buffer.from('after'))).status).toBe(200)
    expect((await put('archive', '/workspace', tarball)).status).toBe(200)
    expect((await exec('cat /workspace/after.txt /workspace/small.txt')).stdout).toBe('aftersmall')
  }, 120_000)

  it('filled through the file API: the write is measured right after, the next is refused, a file-API delete frees it', async () => {
    expect((await put('files', '/workspace/upload.bin', Buffer.alloc((LIMIT_MB + 5) * MB, 1))).status).toBe(200)
    // No sweep: the write itself triggers a measure.
    const refused = await until(() => put('files', '/workspace/next.txt', Buffer.from('next')), (r) => r.status === 413)
    expectRefused(refused)
    const removed = await t.call('DELETE', `/api/v1/sandboxes/${sandbox.id}/files?path=${encodeURIComponent('/workspace/upload.bin')}`, { key })
    expect(removed.status, removed.text).toBeLessThan(300)
    await measure()
    expect((await put('files', '/workspace/next.txt', Buffer.from('next'))).status).toBe(200)
  }, 120_000)
})
