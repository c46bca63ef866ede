import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import Docker from 'dockerode'
import WebSocket from 'ws'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'

// Idle timeouts against a real Docker Engine: a persistent sandbox is stopped, a
// non-persistent one destroyed, and neither while someone holds an exec stream or a
// terminal open on it. Timeouts are the shortest allowed (10 s); the reaper looks often.

let t: TestPlatform
let key: string
const docker = new Docker()

beforeAll(async () => {
  t = await startTestPlatform({ sandboxReaperIntervalMs: 250 })
  key = (await t.newOrganization('Idle Org')).key
}, 60_000)

afterAll(async () => {
  await t?.close()
}, 120_000)

async function create(body: Record<string, unknown>): Promise<any> {
  const res = await t.call('POST', '/api/v1/sandboxes?wait=true', { key, body: { template: 'node', ...body } })
  expect(res.status, res.text).toBe(201)
  expect(res.json.state, res.text).toBe('running')
  return res.json
}

const get = async (id: string) => (await t.call('GET', `/api/v1/sandboxes/${id}`, { key })).json
const exec = async (id: string, cmd: string) => (await t.call('POST', `/api/v1/sandboxes/${id}/exec`, { key, body: { cmd } })).json
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function waitForState(id: string, state: string, withinMs: number): Promise<number> {
  const started = Date.now()
  while (Date.now() - started < withinMs) {
    if ((await get(id)).state === state) return Date.now() - started
    await sleep(200)
  }
  throw new Error(`sandbox ${id} did not become ${state} within ${withinMs} ms (it is ${(await get(id)).state})`)
}

describe.concurrent('idle timeouts', () => {
  it('stops an idle persistent sandbox after its timeout, keeping its files, and the next exec resumes it', async () => {
    const sandbox = await create({ timeout: 10, name: 'idle-persistent' })
    expect((await exec(sandbox.id, 'echo kept > /workspace/kept.txt')).exit_code).toBe(0)
    const lastUse = Date.now()
    await waitForState(sandbox.id, 'paused', 25_000)
    expect(Date.now() - lastUse).toBeGreaterThanOrEqual(10_000)
    const inspect = await docker.getContainer(`miosa-${sandbox.id}`).inspect()
    expect(inspect.State.Running).toBe(false)
    // Any exec on a paused sandbox resumes it transparently.
    const result = await exec(sandbox.id, 'cat /workspace/kept.txt')
    expect(result.stdout).toBe('kept\n')
    expect((await get(sandbox.id)).state).toBe('running')
  }, 60_000)

  it('destroys an idle non-persistent sandbox and discards its /workspace', async () => {
    const sandbox = await create({ timeout: '10s', persistent: false, name: 'idle-disposable' })
    await exec(sandbox.id, 'echo gone > /workspace/gone.txt')
    await waitForState(sandbox.id, 'destroyed', 25_000)
    await expect(docker.getContainer(`miosa-${sandbox.id}`).inspect()).rejects.toMatchObject({ statusCode: 404 })
    const again = await t.call('POST', `/api/v1/sandboxes/${sandbox.id}/exec`, { key, body: { cmd: 'true' } })
    expect(again.status).toBe(409)
  }, 60_000)

  it('does not stop a sandbox while an exec stream is open on it', async () => {
    const sandbox = await create({ timeout: 10, name: 'idle-streaming' })
    const stream = await fetch(`${t.apiUrl}/api/v1/sandboxes/${sandbox.id}/exec?stream=true`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ cmd: 'sleep 14; echo finished' }),
    })
    expect(stream.status).toBe(200)
    const body = stream.text()
    await sleep(12_000)
    expect((await get(sandbox.id)).state).toBe('running')
    const events = await body
    expect(events).toContain('event: exit')
    expect(events).toContain(Buffer.from('finished\n').toString('base64'))
    // Once the stream is closed the clock runs again.
    await waitForState(sandbox.id, 'paused', 25_000)
  }, 70_000)

  it('does not stop a sandbox while a terminal is open on it', async () => {
    const sandbox = await create({ timeout: 10, name: 'idle-terminal' })
    const ws = new WebSocket(`${t.apiUrl.replace('http', 'ws')}/api/v1/sandboxes/${sandbox.id}/terminal?cols=80&rows=24`, {
      headers: { authorization: `Bearer ${key}` },
    })
    let seen = ''
    ws.on('message', (data) => (seen += data.toString()))
    await new Promise((resolve, reject) => {
      ws.once('open', resolve)
      ws.once('error', reject)
    })
    ws.send(Buffer.from('echo term-$((40+2))\n'))
    await sleep(12_000)
    expect(seen).toContain('term-42')
    expect((await get(sandbox.id)).state).toBe('running')
    ws.close()
    await waitForState(sandbox.id, 'paused', 25_000)
  }, 70_000)
})
