import Docker from 'dockerode'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newId, randomBase32 } from '../../src/core/ids.js'
import type { DockerDriver } from '../../src/runtime/docker/docker-driver.js'
import type { RuntimeRef, SandboxSpec } from '../../src/runtime/runtime-driver.js'
import { removePlatformResources } from '../helpers/docker-cleanup.js'
import { testDockerDriver } from '../helpers/docker-driver.js'

// Snapshots and forks of /workspace on the Docker driver, under concurrent writes: a
// snapshot is one point in time, forks never see what their source (or a sibling) writes
// afterwards, and they outlive their source and a restart of the platform.

const ORG = newId('organization')
const WORKSPACE = newId('workspace')
const docker = new Docker()

/** Writes f.<n> (64 KiB of one letter) one after the other, appending n to done.log once each is whole; and n to held.log through one descriptor kept open. */
const WRITER = [
  'cd /workspace; exec 3>>held.log; i=0',
  'while true; do head -c 65536 /dev/zero | tr "\\0" a > f.$i; echo $i >> done.log; echo $i >&3; i=$((i+1)); sleep 0.01; done',
].join('; ')

describe('workspace snapshots and forks (docker)', () => {
  const platformId = `plt_${randomBase32(20)}`
  let driver: DockerDriver
  let source: RuntimeRef
  const made: RuntimeRef[] = []

  const spec = (extra: Partial<SandboxSpec> = {}): SandboxSpec => ({
    sandboxId: newId('sandbox'), organizationId: ORG, workspaceId: WORKSPACE, template: 'node', cpu: 1, memoryMb: 512, pidsLimit: 512, ...extra,
  })
  const sh = async (ref: RuntimeRef, script: string): Promise<string> => {
    const result = await driver.exec(ref, { argv: ['sh', '-c', script] })
    expect(result.stderr).toBe('')
    return result.stdout
  }
  const create = async (extra: Partial<SandboxSpec> = {}): Promise<RuntimeRef> => {
    const ref = await driver.createSandbox(spec(extra))
    made.push(ref)
    return ref
  }
  const lines = async (ref: RuntimeRef, file: string): Promise<number> => Number((await sh(ref, `wc -l < /workspace/${file}`)).trim())

  beforeAll(async () => {
    driver = testDockerDriver(platformId)
    await driver.prepareTemplate('node')
    source = await create()
    await driver.startService(source, 'writer', { argv: ['sh', '-c', WRITER] })
    await new Promise((resolve) => setTimeout(resolve, 1000))
  }, 20 * 60_000)

  afterAll(async () => {
    await driver?.close()
    await removePlatformResources(platformId, driver)
  }, 120_000)

  it('snapshots a consistent point in time while a process writes: every write completed before it is there, whole', async () => {
    const snap = await driver.snapshot(source, newId('snapshot'))
    const copy = await create({ fromSnapshot: snap.id })
    const done = (await sh(copy, 'cat /workspace/done.log')).trim().split('\n').map(Number)
    expect(done.length).toBeGreaterThan(5)
    expect(done).toEqual(done.map((_, i) => i))
    // Each file named in done.log is whole: 65536 bytes of 'a'.
    const sizes = await sh(copy, `cd /workspace; for i in ${done.join(' ')}; do tr -d a < f.$i | wc -c; wc -c < f.$i; done | sort -u`)
    expect(sizes.trim().split('\n').sort()).toEqual(['0', '65536'])
    // What went through the descriptor held open across the snapshot stops at the same point.
    const held = (await sh(copy, 'cat /workspace/held.log')).trim().split('\n').map(Number)
    expect(held.length - done.length).toBeGreaterThanOrEqual(-1)
    expect(held.length - done.length).toBeLessThanOrEqual(0)
  }, 120_000)

  it('forks while the source keeps writing: the fork never sees later writes, and its own stay its own', async () => {
    const snap = await driver.snapshot(source, `fork-${newId('sandbox')}`)
    const fork = await create({ fromSnapshot: snap.id })
    const [forkDone, forkHeld] = [await lines(fork, 'done.log'), await lines(fork, 'held.log')]
    await new Promise((resolve) => setTimeout(resolve, 1500))
    // The source went on (through paths and through its open descriptor) …
    expect(await lines(source, 'done.log')).toBeGreaterThan(forkDone + 10)
    expect(await lines(source, 'held.log')).toBeGreaterThan(forkHeld + 10)
    // … the fork did not.
    expect(await lines(fork, 'done.log')).toBe(forkDone)
    expect(await lines(fork, 'held.log')).toBe(forkHeld)
    await sh(fork, 'echo mine > /workspace/fork-only.txt')
    expect(await sh(source, 'test -e /workspace/fork-only.txt || echo absent')).toBe('absent\n')
  }, 120_000)

  it('keeps two forks of one snapshot apart, and both working once the source is destroyed', async () => {
    await sh(source, 'mkdir -p /workspace/app && echo shared > /workspace/app/base.txt')
    const snap = await driver.snapshot(source, newId('snapshot'))
    const [one, two] = [await create({ fromSnapshot: snap.id }), await create({ fromSnapshot: snap.id })]
    await sh(one, 'echo one > /workspace/app/base.txt && echo one > /workspace/app/one.txt')
    await sh(two, 'echo two > /workspace/app/two.txt && rm /workspace/app/base.txt')
    expect(await sh(one, 'cat /workspace/app/base.txt; ls /workspace/app')).toBe('one\nbase.txt\none.txt\n')
    expect(await sh(two, 'ls /workspace/app')).toBe('two.txt\n')
    expect(await sh(source, 'cat /workspace/app/base.txt')).toBe('shared\n')
    await driver.destroy(source)
    await driver.deleteSnapshot(snap).catch(() => {})
    expect(await sh(one, 'cat /workspace/app/one.txt && echo more > /workspace/app/more.txt && cat /workspace/app/more.txt')).toBe('one\nmore\n')
    expect(await sh(two, 'cat /workspace/app/two.txt')).toBe('two\n')
    // A fork of a fork, with its source gone.
    const again = await create({ fromSnapshot: (await driver.snapshot(one, newId('snapshot'))).id })
    expect(await sh(again, 'cat /workspace/app/more.txt')).toBe('more\n')
  }, 120_000)

  it('copies no /workspace data into the snapshot image, and restores and resumes after a platform restart', async () => {
    const writer = await create()
    await sh(writer, 'head -c 64M /dev/urandom > /workspace/big.bin && md5sum /workspace/big.bin > /workspace/big.md5')
    const snap = await driver.snapshot(writer, newId('snapshot'))
    const template = (await docker.getImage((await docker.getContainer(writer.id).inspect()).Image).inspect()).Size
    // The image holds what changed outside /workspace only (a few files of the agent's), not the 64 MiB.
    expect((snap.sizeBytes as number) - template).toBeLessThan(16 * 1024 * 1024)
    await driver.stop(writer)
    // A new driver over the same machine: what the platform has after a restart.
    await driver.close()
    driver = testDockerDriver(platformId)
    const restored = await create({ fromSnapshot: snap.id })
    expect(await sh(restored, 'cd /workspace && md5sum -c big.md5')).toBe('/workspace/big.bin: OK\n')
    await driver.resume(writer)
    expect(await sh(writer, 'cd /workspace && md5sum -c big.md5 && echo resumed > after.txt && cat after.txt')).toBe('/workspace/big.bin: OK\nresumed\n')
    const usage = (await driver.diskUsage(writer)) as number
    expect(usage).toBeGreaterThanOrEqual(64 * 1024 * 1024)
    await driver.destroy(restored)
    await driver.deleteSnapshot(snap)
  }, 180_000)
})
