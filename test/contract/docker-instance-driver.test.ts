import Docker from 'dockerode'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newId, randomBase32 } from '../../src/core/ids.js'
import { LABEL } from '../../src/runtime/docker/container-spec.js'
import type { DockerDriver } from '../../src/runtime/docker/docker-driver.js'
import type { InstanceSpec } from '../../src/runtime/instance-driver.js'
import { removePlatformResources } from '../helpers/docker-cleanup.js'
import { testDockerDriver } from '../helpers/docker-driver.js'
import { instanceDriverContract } from './instance-driver.case.js'

// Runtime instances on the real Docker Engine: the shared contract, then what only
// Docker has (container options, the apps network's lifetime, a platform restart).

const docker = new Docker()

/** The node template's image, by digest: a stand-in release image with node on its PATH. */
async function nodeImage(driver: DockerDriver): Promise<string> {
  await driver.prepareTemplate('node')
  const template = (await driver.listTemplates()).find((t) => t.name === 'node')
  if (template === undefined) throw new Error('no node template')
  return (await docker.getImage(template.image).inspect()).Id.replace(/^sha256:/, '')
}

instanceDriverContract('docker', async () => {
  const platformId = `plt_${randomBase32(20)}`
  const driver = testDockerDriver(platformId, docker)
  return {
    instances: driver.instances,
    image: await nodeImage(driver),
    caBundle: true,
    sandboxes: driver,
    async killOutside(ref) {
      await docker.getContainer(ref.id).kill()
    },
    async cleanup() {
      await driver.close()
      await removePlatformResources(platformId, driver)
    },
  }
})

describe('DockerInstances on Docker', () => {
  const platformId = `plt_${randomBase32(20)}`
  const workspaceId = newId('workspace')
  let driver: DockerDriver
  let image: string

  const spec = (extra: Partial<InstanceSpec> = {}): InstanceSpec => ({
    instanceId: newId('instance'),
    organizationId: newId('organization'),
    workspaceId,
    deploymentId: newId('deployment'),
    environment: 'production',
    versionId: newId('version'),
    image,
    cmd: ['sleep', '600'],
    env: { A: 'b' },
    cpu: 0.5,
    memoryMb: 128,
    pidsLimit: 64,
    ...extra,
  })

  const appsNetwork = async () => (await docker.listNetworks({ filters: { name: [`${workspaceId}-apps`] } })).filter((n) => n.Labels?.[LABEL.platform] === platformId)

  beforeAll(async () => {
    driver = testDockerDriver(platformId, docker)
    image = await nodeImage(driver)
  }, 10 * 60_000)

  afterAll(async () => {
    await driver?.close()
    await removePlatformResources(platformId, driver)
  }, 120_000)

  it('creates the container through the shared spec: labels, limits, hardening, its image and the apps network only', async () => {
    const s = spec({ cmd: undefined })
    const { ref, address } = await driver.instances.start({ ...s, cmd: ['sleep', '600'] })
    const info = await docker.getContainer(ref.id).inspect()
    expect(info.Name).toBe(`/miosa-inst-${s.instanceId}`)
    expect(info.Image).toBe(`sha256:${image}`)
    expect(info.Config.Labels).toMatchObject({
      [LABEL.platform]: platformId,
      [LABEL.kind]: 'instance',
      [LABEL.workspace]: workspaceId,
      [LABEL.instance]: s.instanceId,
      [LABEL.deployment]: s.deploymentId,
      [LABEL.environment]: 'production',
      [LABEL.version]: s.versionId,
    })
    expect(info.Config.Env).toEqual(expect.arrayContaining(['A=b', 'PORT=8080']))
    expect(info.HostConfig.CapDrop).toEqual(['NET_RAW'])
    expect(info.HostConfig.SecurityOpt).toEqual(['no-new-privileges'])
    expect(info.HostConfig.RestartPolicy?.Name).toBe('no')
    expect(info.HostConfig.Memory).toBe(128 * 1024 * 1024)
    expect(info.HostConfig.PidsLimit).toBe(64)
    expect(info.HostConfig.NanoCpus).toBe(5e8)
    expect(info.HostConfig.LogConfig?.Type).toBe('json-file')
    const networks = Object.keys(info.NetworkSettings.Networks)
    expect(networks).toEqual([`miosa-${platformId.slice(-8)}-${workspaceId}-apps`])
    expect(info.NetworkSettings.Networks[networks[0] ?? '']?.IPAddress).toBe(address.host)
    await driver.instances.stop(ref, 0)
  })

  it('runs the image’s own command when the spec gives none', async () => {
    // A release image whose CMD is a server: the node template with another CMD, labelled for cleanup.
    const base = await docker.createContainer({ Image: `sha256:${image}`, Cmd: ['true'], Labels: { [LABEL.platform]: platformId } })
    const committed = (await base.commit({
      changes: ['CMD ["node", "-e", "require(\'node:http\').createServer((q, r) => r.end(\'own cmd\')).listen(process.env.PORT)"]', `LABEL ${LABEL.platform}=${platformId}`],
    })) as { Id: string }
    await base.remove()
    const { ref, address } = await driver.instances.start(spec({ cmd: undefined, image: committed.Id }))
    let body = ''
    for (let i = 0; i < 100 && body === ''; i++) {
      body = await fetch(`http://${address.host}:${address.port}/`).then((r) => r.text(), async () => {
        await new Promise((r) => setTimeout(r, 100))
        return ''
      })
    }
    expect(body).toBe('own cmd')
    await driver.instances.stop(ref, 0)
  })

  it('says why when an instance exits before its address is known, or reports the exit after', async () => {
    const outcome = await driver.instances.start(spec({ cmd: ['sh', '-c', 'echo boom; exit 5'] })).then(
      async ({ ref }) => {
        for (let i = 0; i < 100 && (await driver.instances.inspect(ref))?.running; i++) await new Promise((r) => setTimeout(r, 100))
        const status = await driver.instances.inspect(ref)
        await driver.instances.stop(ref, 0)
        return status
      },
      (error: unknown) => error,
    )
    expect(outcome).toSatisfy((o: any) => o?.exitCode === 5 || (o?.code === 'invalid' && o.details.exit_code === 5 && o.details.output.includes('boom')))
  })

  it('never shows instances as sandboxes or builders, and keeps them running through close() and a new driver', async () => {
    const s = spec()
    const { ref } = await driver.instances.start(s)
    expect((await driver.listSandboxes()).some((c) => c.ref.id === ref.id)).toBe(false)
    expect((await driver.listBuilders()).some((c) => c.ref.id === ref.id)).toBe(false)
    await driver.close()
    // The platform restarts: a new driver finds the instance, still running.
    driver = testDockerDriver(platformId, docker)
    const found = (await driver.instances.list()).find((i) => i.ref.id === ref.id)
    expect(found).toMatchObject({ instanceId: s.instanceId, running: true })
    await driver.instances.stop(ref, 0)
  })

  it('keeps a workspace’s apps network while an instance of it exists, running or exited, and removes it after', async () => {
    const { ref } = await driver.instances.start(spec({ cmd: ['sh', '-c', 'sleep 1; exit 4'] }))
    await driver.releaseUnused(new Set())
    expect(await appsNetwork()).toHaveLength(1)
    for (let i = 0; i < 100 && (await driver.instances.inspect(ref))?.running; i++) await new Promise((r) => setTimeout(r, 100))
    expect(await driver.instances.inspect(ref)).toMatchObject({ running: false, exitCode: 4 })
    await driver.releaseUnused(new Set())
    expect(await appsNetwork()).toHaveLength(1)
    // A live workspace keeps its networks whether they have containers or not.
    await driver.instances.stop(ref, 0)
    await driver.releaseUnused(new Set([workspaceId]))
    expect(await appsNetwork()).toHaveLength(1)
    await driver.releaseUnused(new Set())
    expect(await appsNetwork()).toHaveLength(0)
    // And it comes back on the next start.
    const again = await driver.instances.start(spec())
    expect(await appsNetwork()).toHaveLength(1)
    await driver.instances.stop(again.ref, 0)
  })

  it('leaves no container behind after one-off runs', async () => {
    const { instanceId: _, ...rest } = spec()
    expect(await driver.instances.runOnce({ ...rest, cmd: ['true'], timeoutMs: 30_000, onLog: () => {} })).toEqual({ exitCode: 0 })
    const left = await docker.listContainers({ all: true, filters: { label: [`${LABEL.platform}=${platformId}`] } })
    expect(left).toEqual([])
  })
})
