import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'

// What one sandbox's commands and file calls may do to it, seen through the API: an exec's
// processes end with it (a fork bomb included), the file API has the sandbox user's rights,
// files the kernel makes up are read whole, and /tmp has a size.

let t: TestPlatform
let key: string
let sandbox: any

beforeAll(async () => {
  t = await startTestPlatform()
  key = (await t.newOrganization('Containment Org')).key
  const res = await t.call('POST', '/api/v1/sandboxes?wait=true', { key, body: { template: 'node', name: 'contained', memory_mb: 512 } })
  expect(res.json.state, res.text).toBe('running')
  sandbox = res.json
}, 120_000)

afterAll(async () => {
  await t?.close()
}, 120_000)

const exec = async (cmd: string, extra: Record<string, unknown> = {}) => (await t.call('POST', `/api/v1/sandboxes/${sandbox.id}/exec`, { key, body: { cmd, ...extra } })).json

async function files(method: 'GET' | 'PUT', path: string, body?: Buffer): Promise<{ status: number; text: string; ms: number }> {
  const started = Date.now()
  const res = await fetch(`${t.apiUrl}/api/v1/sandboxes/${sandbox.id}/files?path=${encodeURIComponent(path)}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/octet-stream' }) },
    ...(body === undefined ? {} : { body }),
    signal: AbortSignal.timeout(20_000),
  })
  return { status: res.status, text: await res.text(), ms: Date.now() - started }
}

describe('processes', () => {
  it('a fork bomb is followed by a working exec', async () => {
    await exec('timeout 10 bash -c ":(){ :|:& };:"')
    const next = await exec('echo alive')
    expect(next.exit_code, next.stderr).toBe(0)
    expect(next.stdout).toBe('alive\n')
  }, 60_000)

  it('a child left running by an exec is gone when it answers; a service stays', async () => {
    await exec('sleep 1000 & echo $! > /workspace/child.pid')
    expect((await exec('kill -0 "$(cat /workspace/child.pid)" 2>/dev/null && echo alive || echo gone')).stdout).toBe('gone\n')
    const service = await t.call('POST', `/api/v1/sandboxes/${sandbox.id}/services`, { key, body: { cmd: 'sleep 1001' } })
    expect(service.status, service.text).toBeLessThan(300)
    expect((await exec('pgrep -fc "^sleep 1001"')).stdout).toBe('1\n')
  })

  it('a timed-out exec takes its children with it', async () => {
    const res = await exec('sleep 1002 & sleep 30', { timeout: 1 })
    expect(res.timed_out).toBe(true)
    expect((await exec('pgrep -fc "^sleep 1002" || true')).stdout).toBe('0\n')
  })
})

describe('files', () => {
  it('cannot read /etc/shadow nor write /etc/passwd: 403 in the standard shape, naming the path', async () => {
    const read = await files('GET', '/etc/shadow')
    expect(read.status).toBe(403)
    expect(JSON.parse(read.text).error).toMatchObject({ code: 'forbidden', message: expect.stringContaining('/etc/shadow') })
    expect(read.text).not.toContain('root:')
    const write = await files('PUT', '/etc/passwd', Buffer.from('root::0:0::/root:/bin/sh\n'))
    expect(write.status).toBe(403)
    expect(JSON.parse(write.text).error).toMatchObject({ code: 'forbidden', message: expect.stringContaining('/etc/passwd') })
    expect((await exec('grep -c "^root:x:" /etc/passwd')).stdout).toBe('1\n')
  })

  it('writes /workspace as before, as the sandbox user', async () => {
    expect((await files('PUT', '/workspace/notes/today.txt', Buffer.from('hello'))).status).toBe(200)
    expect((await files('GET', '/workspace/notes/today.txt')).text).toBe('hello')
    expect((await exec('stat -c "%u %g" /workspace/notes /workspace/notes/today.txt')).stdout).toBe('1000 1000\n1000 1000\n')
  })

  it('reads /sys and /proc files whole and promptly', async () => {
    const address = await files('GET', '/sys/class/net/eth0/address')
    expect(address.status).toBe(200)
    expect(address.text).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}\n$/)
    expect(address.ms).toBeLessThan(5_000)
    const status = await files('GET', '/proc/self/status')
    expect(status.status).toBe(200)
    expect(status.text).toMatch(/^Name:\t/)
  })

  it('/tmp over its size fails clearly, for exec and the file API alike', async () => {
    const full = await exec('head -c 200M /dev/zero > /tmp/fill; status=$?; rm -f /tmp/fill; exit $status')
    expect(full.exit_code).not.toBe(0)
    expect(full.stderr).toContain('No space left on device')
    const put = await files('PUT', '/tmp/big.bin', Buffer.alloc(200 * 1024 * 1024))
    expect(put.status).toBe(413)
    expect(JSON.parse(put.text).error.message).toContain('/tmp/big.bin')
  }, 60_000)
})
