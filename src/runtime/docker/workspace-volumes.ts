import { randomBytes } from 'node:crypto'
import { chmod, chown, lstat, mkdir, opendir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import type Dockerode from 'dockerode'
import type { Logger } from 'pino'
import { BtrfsPool, btrfsUsable, run } from './btrfs-pool.js'
import { LABEL } from './container-spec.js'

// Every sandbox's /workspace as a subvolume of the driver's btrfs pool, bind-mounted into
// its container; snapshots of it as read-only subvolumes. Layout under the pool's mount:
//   bases/<image id>       the /workspace a template image ships, extracted once, read-only
//   sandboxes/<sandbox id> a sandbox's live /workspace (a writable snapshot of its origin)
//   snapshots/<tag>        a snapshot's /workspace, read-only (tag: the snapshot image's tag)
// and beside each a small <name>.json: how many bytes of it came from the template, so
// disk use counts what the sandbox wrote. The subvolumes on disk are the whole state:
// a restarted platform finds every one again by name, and btrfs shares extents between a
// snapshot and the sandboxes made from it, so deleting either never breaks the other.

/** Subvolumes with no container or image left are removed once this old (a create may be under way). */
const ORPHAN_AGE_MS = 10 * 60_000
const NAME = /^[A-Za-z0-9_.-]+$/

interface Meta {
  /** Bytes of the template's own /workspace files in this subvolume, not counted as the sandbox's disk use. */
  baseBytes: number
  /** On a snapshot: the platform that took it (tests remove their own). */
  platformId?: string | undefined
}

export interface VolumeOrigin {
  /** The image the container starts from: its /workspace is the origin when there is no snapshot subvolume. */
  image: string
  /** The snapshot's tag when the sandbox is restored or forked. */
  snapshotTag?: string | undefined
  /** Owner of /workspace itself (the template's user). */
  owner: { uid: number; gid: number } | undefined
}

export class WorkspaceVolumes {
  private readonly pool: BtrfsPool
  private usable: Promise<boolean> | undefined
  private readonly bases = new Map<string, Promise<string>>()

  constructor(private readonly o: { dir: string; docker: Dockerode; platformId: () => string; logger: Logger }) {
    this.pool = new BtrfsPool(o.dir)
  }

  /** Whether sandboxes get a volume here; decided once. Without (not root, no btrfs), /workspace stays in the container and snapshots commit it. */
  enabled(): Promise<boolean> {
    this.usable ??= (async () => {
      if (!(await btrfsUsable())) {
        this.o.logger.info('btrfs is not usable here (needs root, btrfs-progs and the btrfs module): /workspace snapshots copy it with docker commit')
        return false
      }
      try {
        await this.pool.ensure()
        await Promise.all(['bases', 'sandboxes', 'snapshots'].map((d) => mkdir(join(this.pool.mountPoint, d), { recursive: true })))
        return true
      } catch (error) {
        this.o.logger.warn({ err: error }, 'could not mount the workspace pool: /workspace snapshots copy it with docker commit')
        return false
      }
    })()
    return this.usable
  }

  /** Mounted again if it is not (after a host reboot), before a stopped container is started on it. */
  async remount(): Promise<void> {
    this.pool.recheck()
    await this.pool.ensure()
  }

  sandboxPath(sandboxId: string): string {
    return join(this.pool.mountPoint, 'sandboxes', checked(sandboxId))
  }

  /** True when a container's /workspace is one of these volumes. */
  holds(info: Dockerode.ContainerInspectInfo): boolean {
    const sandboxId = info.Config.Labels[LABEL.sandbox]
    return sandboxId !== undefined && info.Mounts.some((m) => m.Destination === '/workspace' && m.Source === this.sandboxPath(sandboxId))
  }

  /** Makes the live /workspace of a new sandbox: a writable snapshot of its snapshot, or of its image's /workspace. Answers the host path. */
  async create(sandboxId: string, origin: VolumeOrigin): Promise<string> {
    const live = this.sandboxPath(sandboxId)
    const snapshot = origin.snapshotTag === undefined ? undefined : this.snapshotPath(origin.snapshotTag)
    let from: string
    if (snapshot !== undefined && (await exists(snapshot))) from = snapshot
    else from = await this.base(origin.image, origin.owner)
    await this.pool.snapshot(from, live, false)
    await writeMeta(live, { baseBytes: (await readMeta(from)).baseBytes })
    return live
  }

  /**
   * A read-only snapshot of a sandbox's /workspace. The caller has frozen the container's
   * processes: btrfs flushes what they wrote and records the point in time.
   */
  async snapshot(sandboxId: string, tag: string): Promise<void> {
    const live = this.sandboxPath(sandboxId)
    const target = this.snapshotPath(tag)
    await writeMeta(target, { baseBytes: (await readMeta(live)).baseBytes, platformId: this.o.platformId() })
    await this.pool.snapshot(live, target, true)
  }

  /** Flushes written data before a snapshot, outside the moment processes are frozen. */
  flush(): Promise<void> {
    return this.pool.flush()
  }

  async deleteSnapshot(tag: string): Promise<void> {
    await this.removeSubvolume(this.snapshotPath(tag))
  }

  async remove(sandboxId: string): Promise<void> {
    await this.removeSubvolume(this.sandboxPath(sandboxId))
  }

  /** Bytes of files in the sandbox's /workspace beyond those its template shipped (apparent sizes, like Docker's SizeRw). */
  async usage(sandboxId: string): Promise<number> {
    const live = this.sandboxPath(sandboxId)
    return Math.max(0, (await apparentSize(live)) - (await readMeta(live)).baseBytes)
  }

  /**
   * Removes what nothing uses: volumes of sandboxes with no container on the daemon (of any
   * platform: the pool may be shared), snapshots whose image is gone, bases of removed images.
   */
  async sweep(): Promise<number> {
    if (!(await this.enabled())) return 0
    const containers = await this.o.docker.listContainers({ all: true, filters: { label: [LABEL.sandbox] } })
    const sandboxes = new Set(containers.map((c) => c.Labels[LABEL.sandbox]))
    const images = await this.o.docker.listImages({ all: true })
    const tags = new Set(images.flatMap((i) => i.RepoTags ?? []).map((t) => t.slice(t.lastIndexOf(':') + 1)))
    const ids = new Set(images.map((i) => i.Id.replace(/^sha256:/, '')))
    let removed = 0
    const sweepDir = async (dir: string, used: Set<string | undefined>) => {
      for (const name of await readdir(join(this.pool.mountPoint, dir))) {
        if (name.endsWith('.json') || used.has(name)) continue
        const path = join(this.pool.mountPoint, dir, name)
        // A writable snapshot keeps its origin's mtime (an old base's, for a volume made a
        // second ago); its metadata file, written when it was made, tells its real age.
        const made = await stat(`${path}.json`).then((s) => s.mtimeMs, () => stat(path).then((s) => s.mtimeMs, () => Date.now()))
        const age = Date.now() - made
        if (age < ORPHAN_AGE_MS) continue
        await this.removeSubvolume(path).then(() => removed++, (error: unknown) => this.o.logger.warn({ err: error, path }, 'could not remove an unused workspace volume'))
      }
    }
    await sweepDir('sandboxes', sandboxes)
    await sweepDir('snapshots', tags)
    await sweepDir('bases', ids)
    return removed
  }

  /** Tags of the snapshots a platform took (for tests, which remove everything their platform made). */
  async snapshotsOf(platformId: string): Promise<string[]> {
    if (!(await this.enabled())) return []
    const dir = join(this.pool.mountPoint, 'snapshots')
    const tags: string[] = []
    for (const name of await readdir(dir)) {
      if (name.endsWith('.json') && (await readMeta(join(dir, name.slice(0, -5)))).platformId === platformId) tags.push(name.slice(0, -5))
    }
    return tags
  }

  private snapshotPath(tag: string): string {
    return join(this.pool.mountPoint, 'snapshots', checked(tag))
  }

  private async removeSubvolume(path: string): Promise<void> {
    await this.pool.deleteSubvolume(path)
    await rm(`${path}.json`, { force: true })
  }

  /** The /workspace an image ships, as a read-only subvolume; extracted once per image id (the first sandbox of a template pays it). */
  private base(image: string, owner: VolumeOrigin['owner']): Promise<string> {
    return (async () => {
      const id = (await this.o.docker.getImage(image).inspect()).Id.replace(/^sha256:/, '')
      let pending = this.bases.get(id)
      if (pending === undefined) {
        pending = this.extractBase(image, id, owner)
        this.bases.set(id, pending)
        pending.catch(() => this.bases.delete(id))
      }
      return pending
    })()
  }

  private async extractBase(image: string, id: string, owner: VolumeOrigin['owner']): Promise<string> {
    const final = join(this.pool.mountPoint, 'bases', id)
    if (await exists(final)) return final
    const scratch = `${final}.tmp-${randomBytes(4).toString('hex')}`
    await this.pool.createSubvolume(scratch)
    try {
      const container = await this.o.docker.createContainer({
        Image: image,
        Cmd: ['true'],
        Labels: { [LABEL.managed]: 'true', [LABEL.platform]: this.o.platformId() },
        HostConfig: { NetworkMode: 'none' },
      })
      try {
        const archive = (await container.getArchive({ path: '/workspace/.' }).catch((error: unknown) => {
          if ((error as { statusCode?: number }).statusCode === 404) return undefined
          throw error
        })) as Readable | undefined
        if (archive !== undefined) await run('tar', ['-x', '-f', '-', '-C', scratch, '--strip-components=1', '--numeric-owner', '--same-owner'], archive)
      } finally {
        await container.remove({ force: true }).catch(() => { /* a leftover helper carries the platform's label, so removing the platform's containers finds it */ })
      }
      if (owner !== undefined) await chown(scratch, owner.uid, owner.gid)
      await chmod(scratch, 0o755)
      await writeMeta(final, { baseBytes: await apparentSize(scratch) })
      await run('btrfs', ['property', 'set', '-ts', scratch, 'ro', 'true'])
      // Atomic: a platform beside us that extracted the same image first wins, and ours goes.
      await rename(scratch, final).catch(async (error: unknown) => {
        if (!(await exists(final))) throw error
        await this.pool.deleteSubvolume(scratch)
      })
    } catch (error) {
      await this.pool.deleteSubvolume(scratch).catch(() => { /* the extraction's own error is the one to report; a scratch subvolume is only space */ })
      throw error
    }
    return final
  }
}

function checked(name: string): string {
  if (!NAME.test(name)) throw new Error(`not a workspace volume name: ${name}`)
  return name
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false)
}

async function readMeta(subvolume: string): Promise<Meta> {
  try {
    return JSON.parse(await readFile(`${subvolume}.json`, 'utf8')) as Meta
  } catch {
    return { baseBytes: 0 }
  }
}

async function writeMeta(subvolume: string, meta: Meta): Promise<void> {
  await writeFile(`${subvolume}.json`, JSON.stringify(meta))
}

/** Sum of the sizes of the regular files under `dir`. */
async function apparentSize(dir: string): Promise<number> {
  let total = 0
  const walk = async (path: string): Promise<void> => {
    const entries = await opendir(path).catch(() => undefined)
    if (entries === undefined) return
    for await (const entry of entries) {
      const child = join(path, entry.name)
      if (entry.isDirectory()) await walk(child)
      else if (entry.isFile()) total += (await lstat(child).catch(() => ({ size: 0 }))).size
    }
  }
  await walk(dir)
  return total
}
