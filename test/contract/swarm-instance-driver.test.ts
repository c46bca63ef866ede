import Docker from 'dockerode'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.js'
import { newId, randomBase32 } from '../../src/core/ids.js'
import { LABEL } from '../../src/runtime/docker/container-spec.js'
import type { DockerDriver } from '../../src/runtime/docker/docker-driver.js'
import { WorkspaceNetworks } from '../../src/runtime/docker/workspace-networks.js'
import type { InstanceSpec } from '../../src/runtime/instance-driver.js'
import { SwarmInstances, requireSwarmManager } from '../../src/runtime/swarm/swarm-instances.js'
import { removePlatformResources } from '../helpers/docker-cleanup.js'
import { testDockerDriver } from '../helpers/docker-driver.js'
import { instanceDriverContract } from './instance-driver.case.js'

// Runtime instances on Docker Swarm (a single-node swarm here: scripts/lib.sh makes the test
// machine one): the shared contract, then what only Swarm has.

const docker = new Docker()
const manager = await requireSwarmManager(docker).then(
  () => true,
  () => false,
)
const whyNot = 'the Docker daemon is not a Swarm manager (run `docker swarm init --advertise-addr 127.0.0.1`)'

async function nodeImage(driver: DockerDriver): Promise<string> {
  await driver.prepareTemplate('node')
  const template = (await driver.listTemplates()).find((t) => t.name === 'node')
  if (template === undefined) throw new Error('no node template')
  return (await docker.getImage(template.image).inspect()).Id.replace(/^sha256:/, '')
}

function swarmInstances(platformId: string): SwarmInstances {
  const config = loadConfig({}, { MIOSA_CACHE_DIR: process.env.MIOSA_CACHE_DIR })
  const logger = pino({ level: 'silent' })
  return new SwarmInstances({
    docker,
    platformId: () => platformId,
    caBundle: config.caBundle,
    networks: new WorkspaceNetworks(docker, () => platformId, config.sandboxSubnets, logger, 'swarm'),
    logger,
  })
}

async function cleanup(platformId: string, driver: DockerDriver): Promise<void> {
  await driver.close()
  await removePlatformResources(platformId, driver)
}

if (manager) {
  instanceDriverContract('swarm', async () => {
    const platformId = `plt_${randomBase32(20)}`
    const driver = testDockerDriver(platformId, docker)
    return {
      instances: swarmInstances(platformId),
      image: await nodeImage(driver),
      caBundle: true,
      sandboxes: driver,
      async killOutside(ref) {
        const task = (await docker.listTasks({ filters: { service: [ref.id] } })) as { Status: { ContainerStatus?: { ContainerID?: string } } }[]
        await docker.getContainer(task[0]?.Status.ContainerStatus?.ContainerID ?? '').kill()
      },
      cleanup: () => cleanup(platformId, driver),
    }
  })
}

describe.skipIf(!manager)(`SwarmInstances on Docker Swarm${manager ? '' : ` (skipped: ${whyNot})`}`, () => {
  const platformId = `plt_${randomBase32(20)}`
  const workspaceId = newId('workspace')
  let driver: DockerDriver
  let instances: SwarmInstances
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

  beforeAll(async () => {
    driver = testDockerDriver(platformId, docker)
    instances = swarmInstances(platformId)
    image = await nodeImage(driver)
  }, 10 * 60_000)

  afterAll(async () => {
    if (driver !== undefined) await cleanup(platformId, driver)
  }, 120_000)

  it('runs an instance as a one-replica service Swarm never restarts, with the labels, limits and hardening of a Docker instance', async () => {
    const s = spec()
    const { ref, address } = await instances.start(s)
    const service = await docker.getService(ref.id).inspect()
    expect(service.Spec.Name).toBe(`miosa-inst-${s.instanceId}`)
    expect(service.Spec.Labels).toMatchObject({ [LABEL.platform]: platformId, [LABEL.kind]: 'instance', [LABEL.instance]: s.instanceId, [LABEL.version]: s.versionId })
    expect(service.Spec.Mode).toEqual({ Replicated: { Replicas: 1 } })
    expect(service.Spec.TaskTemplate.RestartPolicy.Condition).toBe('none')
    // On this node, the one whose task addresses the edge here reaches.
    const node = ((await docker.info()) as { Swarm: { NodeID: string } }).Swarm.NodeID
    expect(service.Spec.TaskTemplate.Placement.Constraints).toEqual([`node.id==${node}`])
    const task = (await docker.listTasks({ filters: { service: [ref.id] } })) as { Status: { ContainerStatus: { ContainerID: string } } }[]
    const info = await docker.getContainer(task[0]?.Status.ContainerStatus.ContainerID ?? '').inspect()
    expect(info.Image).toBe(`sha256:${image}`)
    expect(info.Config.Labels).toMatchObject({ [LABEL.platform]: platformId, [LABEL.kind]: 'instance', [LABEL.workspace]: workspaceId, [LABEL.instance]: s.instanceId })
    expect(info.Config.Env).toEqual(expect.arrayContaining(['A=b', 'PORT=8080']))
    expect(info.HostConfig.CapDrop).toEqual(['CAP_NET_RAW'])
    expect(info.HostConfig.Init).toBe(true)
    expect(info.HostConfig.Memory).toBe(128 * 1024 * 1024)
    expect(info.HostConfig.PidsLimit).toBe(64)
    expect(info.HostConfig.NanoCpus).toBe(5e8)
    // On the workspace's swarm-scoped apps network only, with the subnet and fenced bridge we chose.
    const networks = Object.keys(info.NetworkSettings.Networks)
    expect(networks).toEqual([`miosa-${platformId.slice(-8)}-${workspaceId}-apps-swarm`])
    expect(info.NetworkSettings.Networks[networks[0] ?? '']?.IPAddress).toBe(address.host)
    expect(address.host).toMatch(/^10\.213\./)
    await instances.stop(ref, 0)
  })

  it('re-adopts a running instance from a new driver (a restarted platform)', async () => {
    const s = spec()
    const { ref, address } = await instances.start(s)
    const found = (await swarmInstances(platformId).list()).find((i) => i.ref.id === ref.id)
    expect(found).toMatchObject({ instanceId: s.instanceId, running: true, address })
    await instances.stop(ref, 0)
  })

  it('keeps the workspace’s swarm network while an instance exists, then removes it with its config network', async () => {
    const name = `miosa-${platformId.slice(-8)}-${workspaceId}-apps-swarm`
    const named = async () => (await docker.listNetworks({ filters: { name: [name] } })).map((n) => n.Name).sort()
    const { ref } = await instances.start(spec())
    await driver.releaseUnused(new Set())
    expect(await named()).toEqual([name, `${name}-config`])
    await instances.stop(ref, 0)
    // The task's container goes a moment after its service.
    await expect.poll(async () => (await docker.listContainers({ all: true, filters: { label: [`${LABEL.platform}=${platformId}`, `${LABEL.kind}=instance`] } })).length, { timeout: 20_000 }).toBe(0)
    await expect
      .poll(async () => {
        await driver.releaseUnused(new Set())
        return named()
      }, { timeout: 20_000, interval: 500 })
      .toEqual([])
  })

  it('refuses a release image this host does not have, leaving no service', async () => {
    await expect(instances.start(spec({ image: 'f'.repeat(64) }))).rejects.toMatchObject({ code: 'not_found' })
    expect(await docker.listServices({ filters: { label: [`${LABEL.platform}=${platformId}`] } })).toEqual([])
  })

  it('says why when an instance exits at once, or reports the exit after', async () => {
    const outcome = await instances.start(spec({ cmd: ['sh', '-c', 'echo boom; exit 5'] })).then(
      async ({ ref }) => {
        for (let i = 0; i < 100 && (await instances.inspect(ref))?.running; i++) await new Promise((r) => setTimeout(r, 100))
        const status = await instances.inspect(ref)
        await instances.stop(ref, 0)
        return status
      },
      (error: unknown) => error,
    )
    expect(outcome).toSatisfy((o: any) => o?.exitCode === 5 || (o?.code === 'invalid' && o.details.exit_code === 5 && o.details.output.includes('boom')))
  })
})
