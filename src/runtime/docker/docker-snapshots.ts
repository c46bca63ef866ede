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

const DRIVER = 'docker'
export const SNAPSHOT_REPO = 'miosa/snapshot'

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
    if (freeze) await container.pause()
    let results: [PromiseSettledResult<{ Id: string }>, PromiseSettledResult<void>]
    try {
      // Both parts see the same frozen instant: nothing in the container runs until both are taken.
      results = await Promise.allSettled([this.commit(container, snapshotId, false), this.o.volumes.snapshot(sandboxId, snapshotId)])
    } finally {
      if (freeze) await container.unpause()
    }
    const [image, volume] = results
    if (image.status === 'rejected' || volume.status === 'rejected') {
      if (image.status === 'fulfilled') await this.o.docker.getImage(image.value.Id).remove().catch(() => {})
      if (volume.status === 'fulfilled') await this.o.volumes.deleteSnapshot(snapshotId).catch(() => {})
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
    try {
      await this.o.docker.getImage(snapshot.id).remove()
    } catch (error) {
      const status = (error as { statusCode?: number }).statusCode
      if (status === 409) throw new MiosaError('conflict', 'the snapshot is still in use by a sandbox created from it', { cause: error })
      if (status !== 404) throw error
    }
    // Sandboxes made from it have volumes of their own (btrfs shares the extents): the snapshot's can go.
    const tag = DockerSnapshots.tagOf(snapshot.id)
    if (tag !== undefined && (await this.o.volumes.enabled())) await this.o.volumes.deleteSnapshot(tag)
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
