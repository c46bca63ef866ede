import { spawn } from 'node:child_process'
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Readable } from 'node:stream'

// A btrfs file system the driver owns: a sparse image file, loop-mounted, holding one
// subvolume per sandbox /workspace and per snapshot. A btrfs snapshot of a subvolume
// shares every extent with its source (copy on write), so snapshot and fork take the
// same time whatever the workspace holds, and the live subvolume a container has
// mounted is never switched under it: open files, working directories and inotify
// watches of running processes stay valid. Several platforms on one machine (tests)
// share the pool of a directory: the first to need it creates and mounts it, under a lock.

/** Size of the sparse image: an upper bound, blocks are taken from the host's disk as written. */
const IMAGE_BYTES = 512 * 1024 ** 3
const LOCK_STALE_MS = 60_000

export class BtrfsPool {
  readonly mountPoint: string
  private readonly image: string
  private ready: Promise<void> | undefined

  constructor(readonly dir: string) {
    this.mountPoint = join(dir, 'mnt')
    this.image = join(dir, 'btrfs.img')
  }

  /** Mounts the pool (creating it the first time); idempotent, and again after a host reboot. */
  ensure(): Promise<void> {
    this.ready ??= this.mountOnce().catch((error: unknown) => {
      this.ready = undefined
      throw error
    })
    return this.ready
  }

  /** Forgets that the pool was mounted, so the next ensure() checks again (the host may have rebooted). */
  recheck(): void {
    this.ready = undefined
  }

  private async mountOnce(): Promise<void> {
    if (await isBtrfsMount(this.mountPoint)) return
    await mkdir(this.mountPoint, { recursive: true, mode: 0o700 })
    await withLock(join(this.dir, '.lock'), async () => {
      if (await isBtrfsMount(this.mountPoint)) return
      if (!(await exists(this.image))) {
        const fresh = `${this.image}.new`
        await writeFile(fresh, '')
        await run('truncate', ['-s', String(IMAGE_BYTES), fresh])
        await run('mkfs.btrfs', ['-q', fresh])
        await run('mv', [fresh, this.image])
      }
      await run('mount', ['-o', 'loop', this.image, this.mountPoint])
    })
  }

  async createSubvolume(path: string): Promise<void> {
    await run('btrfs', ['subvolume', 'create', path])
  }

  /** A copy-on-write snapshot of `from` at `to`, read-only or writable. */
  async snapshot(from: string, to: string, readOnly: boolean): Promise<void> {
    await run('btrfs', ['subvolume', 'snapshot', ...(readOnly ? ['-r'] : []), from, to])
  }

  async deleteSubvolume(path: string): Promise<void> {
    if (!(await exists(path))) return
    await run('btrfs', ['subvolume', 'delete', path])
  }

  /** Writes dirty pages of the whole pool to disk (syncfs), so a snapshot taken right after has little to flush. */
  async flush(): Promise<void> {
    await run('sync', ['-f', this.mountPoint])
  }
}

/** True when the machine can host a pool: root, the btrfs tools, the kernel's btrfs. */
export async function btrfsUsable(): Promise<boolean> {
  if (process.getuid?.() !== 0) return false
  try {
    if (!/\sbtrfs$/m.test(await readFile('/proc/filesystems', 'utf8'))) {
      // Not loaded yet: mount(8) would load the module; ask modprobe the same way.
      await run('modprobe', ['btrfs'])
    }
    await run('btrfs', ['--version'])
    await run('mkfs.btrfs', ['--version'])
    return true
  } catch {
    return false
  }
}

async function isBtrfsMount(path: string): Promise<boolean> {
  const mounts = await readFile('/proc/self/mountinfo', 'utf8')
  return mounts.split('\n').some((line) => {
    const fields = line.split(' ')
    const separator = fields.indexOf('-')
    return fields[4] === path && fields[separator + 1] === 'btrfs'
  })
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false)
}

/** A lock between processes: a directory made atomically, taken over once it is older than a crash would leave it. */
async function withLock<T>(path: string, work: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      await mkdir(path)
      break
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      const age = await stat(path).then((s) => Date.now() - s.mtimeMs, () => 0)
      if (age > LOCK_STALE_MS) await rm(path, { recursive: true, force: true })
      else await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  try {
    return await work()
  } finally {
    await rm(path, { recursive: true, force: true })
  }
}

/** Runs a command; rejects with its stderr when it fails. `input`, when given, is piped to its stdin. */
export function run(cmd: string, args: string[], input?: Readable): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr?.on('data', (chunk: Buffer) => {
      if (stderr.length < 4096) stderr += chunk.toString()
    })
    if (input !== undefined && child.stdin !== null) {
      input.on('error', (error) => child.kill() && reject(error))
      input.pipe(child.stdin)
    }
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args[0] ?? ''} failed (${code}): ${stderr.trim()}`))))
  })
}
