import Docker from 'dockerode'
import type { RuntimeDriver } from '../../src/runtime/runtime-driver.js'

// Tests leave nothing behind on the Docker daemon: every container, network and
// snapshot image a test platform made carries its platform id, and goes with it.

export async function removePlatformResources(platformId: string, driver?: RuntimeDriver): Promise<void> {
  const docker = new Docker()
  const label = `miosa.platform=${platformId}`
  // Runtime instances on Swarm (--runtime swarm) are services: removed first, or Swarm would start their tasks again (no swarm: nothing to do).
  const services = await docker.listServices({ filters: { label: [label] } }).catch(() => [])
  await Promise.all(services.map((s) => docker.getService(s.ID).remove().catch(() => {})))
  const containers = await docker.listContainers({ all: true, filters: { label: [label] } })
  await Promise.all(containers.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => {})))
  // Snapshots with nothing of their own outside /workspace are a tag of a template image: removed by name.
  if (driver !== undefined && 'snapshotIds' in driver && typeof driver.snapshotIds === 'function') {
    for (const id of (await driver.snapshotIds()) as string[]) await driver.deleteSnapshot({ driver: 'docker', id, sizeBytes: null }).catch(() => {})
  }
  const images = await docker.listImages({ filters: { label: [label] } })
  for (const image of images) await docker.getImage(image.Id).remove({ force: true }).catch(() => {})
  // Egress rules of containers that no longer run (these, and any left by a crash) go too.
  await driver?.syncEgress?.([]).catch(() => {})
  // The driver removes its networks together with the firewall rules it added for them.
  await driver?.releaseUnused?.(new Set()).catch(() => {})
  // Again if need be: a Swarm apps network's config network goes only once the node has let go of the network made from it.
  for (let pass = 0; pass < 3; pass++) {
    const networks = await docker.listNetworks({ filters: { label: [label] } })
    if (networks.length === 0) break
    if (pass > 0) await new Promise((r) => setTimeout(r, 500))
    await Promise.all(networks.map((n) => docker.getNetwork(n.Id).remove().catch(() => {})))
  }
}
