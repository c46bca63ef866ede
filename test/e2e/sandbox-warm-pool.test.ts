import Docker from 'dockerode'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LABEL } from '../../src/runtime/docker/container-spec.js'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'

// The warm pool against a real Docker Engine, through the API: a create takes a container
// the pool started ahead of time, the pool refills, a pooled container belongs to one
// organization, workspace and template only (nobody else's files or env reach it), and a
// sandbox that asks for other limits than the pool's gets its own.

let t: TestPlatform
const docker = new Docker()
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

beforeAll(async () => {
  t = await startTestPlatform({ sandboxWarmPool: 1 })
}, 60_000)

afterAll(async () => {
  await t?.close()
}, 120_000)

interface Pooled {
  sandboxId: string
  containerId: string
  organizationId: string
  workspaceId: string
  template: string
}

/** This platform's sandbox containers that no sandbox record has: the pool's. */
async function pooled(): Promise<Pooled[]> {
  const containers = await docker.listContainers({ all: true, filters: { label: [`${LABEL.platform}=${t.platformId}`, `${LABEL.kind}=sandbox`] } })
  const ids = containers.map((c) => c.Labels[LABEL.sandbox] as string)
  const known = new Set((await t.platform.store.sandboxes.findByIds(ids)).map((s) => s.id))
  return containers
    .filter((c) => !known.has(c.Labels[LABEL.sandbox] as string) && c.State === 'running')
    .map((c) => ({
      sandboxId: c.Labels[LABEL.sandbox] as string,
      containerId: c.Id,
      organizationId: c.Labels[LABEL.organization] as string,
      workspaceId: c.Labels[LABEL.workspace] as string,
      template: c.Labels[LABEL.template] as string,
    }))
}

/** Whether the container's agent has started listening (it logs so): the pool's container is ready then. */
async function agentListening(containerId: string): Promise<boolean> {
  const logs = await docker.getContainer(containerId).logs({ stdout: true, stderr: true })
  return logs.toString('utf8').includes('miosa agent listening')
}

/** The pool's containers for a workspace and template, once there are `count` of them. */
async function poolOf(workspaceId: string, template: string, count = 1, withinMs = 30_000): Promise<Pooled[]> {
  const deadline = Date.now() + withinMs
  for (;;) {
    const ready: Pooled[] = []
    for (const p of await pooled()) {
      if (p.workspaceId === workspaceId && p.template === template && (await agentListening(p.containerId))) ready.push(p)
    }
    if (ready.length >= count) {
      await sleep(300) // the pool takes it in as soon as its agent answers the platform
      return ready
    }
    if (Date.now() > deadline) throw new Error(`the warm pool of ${workspaceId}/${template} has ${ready.length} containers, not ${count}, after ${withinMs} ms`)
    await sleep(200)
  }
}

async function create(key: string, body: Record<string, unknown>): Promise<any> {
  const res = await t.call('POST', '/api/v1/sandboxes?wait=true', { key, body: { template: 'node', persistent: false, ...body } })
  expect(res.status, res.text).toBe(201)
  expect(res.json.state, res.text).toBe('running')
  return res.json
}

async function exec(key: string, id: string, cmd: string): Promise<{ exit_code: number; stdout: string }> {
  const res = await t.call('POST', `/api/v1/sandboxes/${id}/exec`, { key, body: { cmd } })
  expect(res.status, res.text).toBe(200)
  return res.json
}

describe.sequential('the warm pool', () => {
  let alice: { id: string; key: string }
  let bob: { id: string; key: string }
  let aliceWorkspace: string

  it('a create takes a container the pool started before it was asked for, and the pool refills', async () => {
    alice = await t.newOrganization('Alice Org')
    bob = await t.newOrganization('Bob Org')
    // The first create of a workspace and template starts cold, and makes the pool fill for the next.
    const first = await create(alice.key, { name: 'first', env: { ALICE_SECRET: 'alice-env-value' } })
    aliceWorkspace = first.workspace_id
    expect((await exec(alice.key, first.id, 'echo alice-file-content > /workspace/alice.txt')).exit_code).toBe(0)
    const [warm] = await poolOf(aliceWorkspace, 'node')
    expect(warm?.organizationId).toBe(alice.id)

    const second = await create(alice.key, { name: 'second' })
    expect(second.id).toBe(warm?.sandboxId)
    const inspect = await docker.getContainer(`miosa-${second.id}`).inspect()
    expect(inspect.Id).toBe(warm?.containerId)
    expect(Date.parse(inspect.State.StartedAt)).toBeLessThan(Date.parse(second.created_at))
    expect((await exec(alice.key, second.id, 'node -v')).stdout).toMatch(/^v22\./)

    const [refill] = await poolOf(aliceWorkspace, 'node')
    expect(refill?.sandboxId).not.toBe(second.id)
    // A sandbox that was used is never handed to the pool again: destroying it removes its container.
    await t.call('DELETE', `/api/v1/sandboxes/${first.id}`, { key: alice.key })
    await expect(docker.getContainer(`miosa-${first.id}`).inspect()).rejects.toMatchObject({ statusCode: 404 })
    expect((await pooled()).map((p) => p.sandboxId)).not.toContain(first.id)
  }, 120_000)

  it("never gives one organization's pooled container to another, nor their files or env", async () => {
    const aliceReady = await poolOf(aliceWorkspace, 'node')
    const bobs = await create(bob.key, { name: 'bob-first' })
    expect(aliceReady.map((p) => p.sandboxId)).not.toContain(bobs.id)
    const bobContainer = await docker.getContainer(`miosa-${bobs.id}`).inspect()
    expect(bobContainer.Config.Labels[LABEL.organization]).toBe(bob.id)
    // Bob's own pool fills, then his next sandbox comes from it: still nothing of Alice's inside.
    const [bobWarm] = await poolOf(bobs.workspace_id, 'node')
    const bobNext = await create(bob.key, { name: 'bob-second' })
    expect(bobNext.id).toBe(bobWarm?.sandboxId)
    for (const id of [bobs.id, bobNext.id]) {
      const look = await exec(bob.key, id, 'ls /workspace; env; cat /workspace/alice.txt 2>/dev/null; true')
      expect(look.stdout).not.toContain('alice')
      expect(look.stdout).not.toContain('ALICE_SECRET')
    }
    // Alice's pool is untouched by Bob's creates.
    expect((await poolOf(aliceWorkspace, 'node')).map((p) => p.sandboxId)).toEqual(aliceReady.map((p) => p.sandboxId))
    // And a sandbox of Alice's from her pool does not carry the env of her earlier sandbox either.
    const fromPool = await create(alice.key, { name: 'alice-third' })
    expect(fromPool.id).toBe(aliceReady[0]?.sandboxId)
    const env = await exec(alice.key, fromPool.id, 'env; ls -a /workspace')
    expect(env.stdout).not.toContain('ALICE_SECRET')
    expect(env.stdout).not.toContain('alice.txt')
  }, 120_000)

  it("a sandbox of another template never takes the pool's containers, and other limits are applied to a warm one", async () => {
    const ready = await poolOf(aliceWorkspace, 'node')
    const other = await create(alice.key, { template: 'static', name: 'static-one' })
    expect(ready.map((p) => p.sandboxId)).not.toContain(other.id)
    expect((await docker.getContainer(`miosa-${other.id}`).inspect()).Config.Labels[LABEL.template]).toBe('static')

    const small = await create(alice.key, { name: 'small', cpu: 0.5, memory_mb: 256 })
    expect(small.id).toBe(ready[0]?.sandboxId)
    const limits = (await docker.getContainer(`miosa-${small.id}`).inspect()).HostConfig
    expect(limits.NanoCpus).toBe(0.5e9)
    expect(limits.Memory).toBe(256 * 1024 * 1024)
    // What the kernel enforces, seen from inside (cgroup v2, else v1).
    const inside = await exec(alice.key, small.id, 'cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes')
    expect(inside.stdout.trim()).toBe(String(256 * 1024 * 1024))
  }, 120_000)

  it('a burst of creates grows its pool to the burst, so the next burst is served from it', async () => {
    const carol = await t.newOrganization('Carol Org')
    // The first burst meets a pool of one: the rest start cold, and the pool learns the burst's size.
    const first = await Promise.all([1, 2, 3].map((n) => create(carol.key, { name: `burst-a${n}` })))
    const workspace = first[0]?.workspace_id as string
    const ready = await poolOf(workspace, 'node', 3)
    const second = await Promise.all([1, 2, 3].map((n) => create(carol.key, { name: `burst-b${n}` })))
    expect(second.map((s) => s.id).sort()).toEqual(ready.slice(0, 3).map((p) => p.sandboxId).sort())
    await Promise.all([...first, ...second].map((s) => t.call('DELETE', `/api/v1/sandboxes/${s.id}`, { key: carol.key })))
  }, 120_000)
})
