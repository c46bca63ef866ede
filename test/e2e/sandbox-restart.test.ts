import Docker from 'dockerode'
import { afterAll, expect, it } from 'vitest'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'

// A server restart loses no sandbox and duplicates none: the new process finds the
// containers by their labels and takes them back, running ones running and stopped
// ones paused, with every file in place.

const docker = new Docker()
let second: TestPlatform | undefined

afterAll(async () => {
  await second?.close()
}, 120_000)

it('re-adopts running and paused sandboxes after a restart', async () => {
  const first = await startTestPlatform()
  const { key } = await first.newOrganization('Restart Org')
  const create = async (name: string) => {
    const res = await first.call('POST', '/api/v1/sandboxes?wait=true', { key, body: { template: 'node', name } })
    expect(res.json.state, res.text).toBe('running')
    return res.json.id as string
  }
  const running = await create('keeps-running')
  const paused = await create('gets-paused')
  for (const id of [running, paused]) {
    await first.call('POST', `/api/v1/sandboxes/${id}/exec`, { key, body: { cmd: `echo ${id} > /workspace/who.txt` } })
  }
  expect((await first.call('POST', `/api/v1/sandboxes/${paused}/stop`, { key })).json.state).toBe('paused')
  const containersBefore = await docker.listContainers({ all: true, filters: { label: [`miosa.platform=${first.platformId}`] } })
  expect(containersBefore).toHaveLength(2)
  await first.close({ keep: true })

  second = await startTestPlatform({ dataDir: first.dataDir })
  expect(second.platformId).toBe(first.platformId)
  const get = async (id: string) => (await second!.call('GET', `/api/v1/sandboxes/${id}`, { key })).json
  expect((await get(running)).state).toBe('running')
  expect((await get(paused)).state).toBe('paused')
  for (const id of [running, paused]) {
    const res = await second.call('POST', `/api/v1/sandboxes/${id}/exec`, { key, body: { cmd: 'cat /workspace/who.txt' } })
    expect(res.json.stdout, res.text).toBe(`${id}\n`)
  }
  const containersAfter = await docker.listContainers({ all: true, filters: { label: [`miosa.platform=${first.platformId}`] } })
  expect(containersAfter.map((c) => c.Id).sort()).toEqual(containersBefore.map((c) => c.Id).sort())
}, 180_000)

it('a reconcile pass during a snapshot leaves the sandbox running, not paused', async () => {
  const t = await startTestPlatform({ reconcileIntervalMs: 3_600_000 })
  try {
    const { key } = await t.newOrganization('Reconcile Org')
    const created = await t.call('POST', '/api/v1/sandboxes?wait=true', { key, body: { template: 'node' } })
    const id = created.json.id as string
    // Enough in the writable layer that the commit (which freezes the container) takes a while.
    const fill = await t.call('POST', `/api/v1/sandboxes/${id}/exec`, { key, body: { cmd: 'head -c 300000000 /dev/urandom > /workspace/big.bin' } })
    expect(fill.json.exit_code, fill.text).toBe(0)
    const snapshot = t.call('POST', `/api/v1/sandboxes/${id}/snapshots`, { key, body: { name: 'big' } })
    await new Promise((resolve) => setTimeout(resolve, 300))
    await t.platform.reconciler.reconcile()
    expect((await snapshot).status).toBe(201)
    await t.platform.reconciler.reconcile()
    expect((await t.call('GET', `/api/v1/sandboxes/${id}`, { key })).json.state).toBe('running')
  } finally {
    await t.close()
  }
}, 120_000)
