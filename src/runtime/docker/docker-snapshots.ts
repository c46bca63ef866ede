import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import type Dockerode from 'dockerode'
import { MiosaError } from '../../core/errors.js'
import type { SnapshotRef } from '../runtime-driver.js'
import { LABEL } from './container-spec.js'
import type { WorkspaceVolumes } from './workspace-volumes.js'

// A snapshot is two parts taken at one frozen instant: the container's filesystem outside
// /workspace (packages, files under /root) as an image, by `docker commit`, which copies
// only what changed there; and /workspace as a read-only btrfs snapshot of the sandbox's
// volume, which copies nothing. Its id stays the image's name, so a restore or fork finds
// both from it, and snapshots taken before workspace volumes existed still restore.
// Containers without a volume (old ones, or a machine without btrfs) are committed whole.
// When nothing changed outside /workspace but what the platform itself mounts, there is
// nothing to commit: the snapshot's name is a second tag of the container's own image
// (a commit costs Docker 0.1–0.7 s even when empty), and containers started from a
// snapshot carry its tag in a label, so one in use is still refused deletion.

const DRIVER = 'docker'
export const SNAPSHOT_REPO = 'miosa/snapshot'
/** What every sandbox container has in its own layer without anyone writing there: mount points of the agent, tini and the CA bundle, and the agent's sockets. */
const PAUSE_ATTEMPTS = 5
const PLATFORM_PATHS = ['/opt/miosa', '/usr/sbin/docker-init', '/etc/miosa', '/run/miosa-agent']

export class DockerSnapshots {
  constructor(private readonly o: { docker: Dockerode; volumes: WorkspaceVolumes; platformId: () => string }) {}

  /** The tag of a snapshot image this driver made (its volume's name), from a SnapshotRef id. */
  static tagOf(id: string): string | undefined {
    return id.startsWith(`${SNAPSHOT_REPO}:`) ? id.slice(SNAPSHOT_REPO.length + 1) : undefined
  }

  async take(container: Dockerode.Container, snapshotId: string): Promise<SnapshotRef> {
    const info = await container.inspect()
    if (!this.o.volumes.holds(info)) return this.byCommit(container, snapshotId)
    const sandboxId = info.Config.Labels[LABEL.sandbox] as string
    // What was written so far goes to disk before the freeze, so the freeze itself stays short.
    await this.o.volumes.flush()
    const freeze = info.State.Running && !info.State.Paused
    if (freeze) await pause(container)
    let results: [PromiseSettledResult<{ Id: string }>, PromiseSettledResult<void>]
    try {
      // Both parts see the same frozen instant: nothing in the container runs until both are taken.
      results = await Promise.allSettled([this.image(container, info, snapshotId), this.o.volumes.snapshot(sandboxId, snapshotId)])
    } finally {
      if (freeze) await container.unpause()
    }
    const [image, volume] = results
    if (image.status === 'rejected' || volume.status === 'rejected') {
      if (image.status === 'fulfilled') await this.o.docker.getImage(`${SNAPSHOT_REPO}:${snapshotId}`).remove().catch(() => { /* the snapshot failed anyway: its error is reported; a stray tag is only space */ })
      if (volume.status === 'fulfilled') await this.o.volumes.deleteSnapshot(snapshotId).catch(() => { /* the snapshot failed anyway: its error is reported; the sweep removes an unreferenced subvolume */ })
      throw image.status === 'rejected' ? image.reason : (volume as PromiseRejectedResult).reason
    }
    return this.describe(image.value.Id, snapshotId)
  }

  /** The whole filesystem, /workspace included, in one image (the path before workspace volumes; kept for old containers and the bench). */
  async byCommit(container: Dockerode.Container, snapshotId: string): Promise<SnapshotRef> {
    // pause: true freezes the processes while the filesystem is copied, so the snapshot is consistent.
    const result = await this.commit(container, snapshotId, true)
    return this.describe(result.Id, snapshotId)
  }

  async delete(snapshot: SnapshotRef): Promise<void> {
    const tag = DockerSnapshots.tagOf(snapshot.id)
    if (tag !== undefined) {
      const users = await this.o.docker.listContainers({ all: true, filters: { label: [`${LABEL.snapshot}=${tag}`] } })
      if (users.length > 0) throw new MiosaError('conflict', 'the snapshot is still in use by a sandbox created from it')
    }
    try {
      await this.o.docker.getImage(snapshot.id).remove()
    } catch (error) {
      const status = (error as { statusCode?: number }).statusCode
      if (status === 409) throw new MiosaError('conflict', 'the snapshot is still in use by a sandbox created from it', { cause: error })
      if (status !== 404) throw error
    }
    // Sandboxes made from it have volumes of their own (btrfs shares the extents): the snapshot's can go.
    if (tag !== undefined && (await this.o.volumes.enabled())) await this.o.volumes.deleteSnapshot(tag)
  }

  /** The image part of a snapshot: a commit of the container's own layer, or a tag of its image when that layer holds nothing of the sandbox's. */
  private async image(container: Dockerode.Container, info: Dockerode.ContainerInspectInfo, snapshotId: string): Promise<{ Id: string }> {
    if (await ownChanges(info)) return this.commit(container, snapshotId, false)
    await this.o.docker.getImage(info.Image).tag({ repo: SNAPSHOT_REPO, tag: snapshotId })
    return { Id: info.Image }
  }

  private async commit(container: Dockerode.Container, snapshotId: string, pause: boolean): Promise<{ Id: string }> {
    return (await container.commit({
      repo: SNAPSHOT_REPO,
      tag: snapshotId,
      pause,
      // Which platform made it, so an operator (or a test) can find every image of one platform.
      changes: `LABEL ${LABEL.platform}=${this.o.platformId()}`,
    })) as { Id: string }
  }

  private async describe(imageId: string, snapshotId: string): Promise<SnapshotRef> {
    const image = await this.o.docker.getImage(imageId).inspect()
    return { driver: DRIVER, id: `${SNAPSHOT_REPO}:${snapshotId}`, sizeBytes: image.Size }
  }
}

/** Freezes the container's processes. The freezer gives up when a process keeps forking through its attempt (runc: "unable to freeze"): try again, a few times. */
async function pause(container: Dockerode.Container): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await container.pause()
      return
    } catch (error) {
      if (attempt >= PAUSE_ATTEMPTS || !/unable to freeze/i.test((error as Error).message)) throw error
      await new Promise((resolve) => setTimeout(resolve, 50 * attempt))
    }
  }
}

/**
 * Whether the container's own layer holds anything but what the platform put there, read
 * from overlay2's upper directory (Docker's own diff took 1.5–2 s here even for a few
 * entries). Another storage driver: assume it does, and commit.
 */
async function ownChanges(info: Dockerode.ContainerInspectInfo): Promise<boolean> {
  const upper = (info.GraphDriver as { Data?: Record<string, string> | null } | undefined)?.Data?.UpperDir
  if (upper === undefined) return true
  const walk = async (dir: string, path: string): Promise<boolean> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => undefined)
    if (entries === undefined) return true
    for (const entry of entries) {
      const child = `${path}/${entry.name}`
      if (PLATFORM_PATHS.some((p) => child === p || child.startsWith(`${p}/`))) continue
      // A directory above a platform path (/opt, /usr/sbin): only what else is in it counts.
      if (entry.isDirectory() && PLATFORM_PATHS.some((p) => p.startsWith(`${child}/`))) {
        if (await walk(join(dir, entry.name), child)) return true
        continue
      }
      return true
    }
    return false
  }
  return walk(upper, '')
}
