import { randomBytes } from 'node:crypto'
import { mkdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

// A lock shared by processes on one machine (several servers, test workers) that use
// the same cache directory, so only one of them does a long job such as an image build.

const LOCK_POLL_MS = 500
/** A lock not refreshed for this long belongs to a builder that died. */
const LOCK_STALE_MS = 30 * 60_000
const LOCK_HEARTBEAT_MS = 60_000

/**
 * Holds `<dir>/<name>.lock` (a directory: mkdir is atomic) while `fn` runs. A lock whose
 * owner died on this host, or which nobody refreshed for LOCK_STALE_MS, is broken. Two
 * processes breaking the same stale lock at once may both run `fn`: for an image build,
 * harmless, both tag the same image.
 */
export async function withLock<T>(dir: string, name: string, signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
  await mkdir(dir, { recursive: true })
  const lock = join(dir, `${name}.lock`)
  for (;;) {
    signal.throwIfAborted()
    try {
      await mkdir(lock)
      break
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
    if (await isStale(lock)) {
      await rm(lock, { recursive: true, force: true })
      continue
    }
    await sleep(LOCK_POLL_MS, undefined, { signal })
  }
  const heartbeat = setInterval(() => {
    const now = new Date()
    utimes(lock, now, now).catch(() => { /* a missed beat is retried in LOCK_HEARTBEAT_MS; the lock is stale only after several */ })
  }, LOCK_HEARTBEAT_MS)
  heartbeat.unref()
  try {
    await writeFile(join(lock, 'owner'), JSON.stringify({ host: hostname(), pid: process.pid, nonce: randomBytes(6).toString('hex') }))
    return await fn()
  } finally {
    clearInterval(heartbeat)
    await rm(lock, { recursive: true, force: true })
  }
}

async function isStale(lock: string): Promise<boolean> {
  try {
    const info = await stat(lock)
    if (Date.now() - info.mtimeMs > LOCK_STALE_MS) return true
    const owner = JSON.parse(await readFile(join(lock, 'owner'), 'utf8').catch(() => '{}')) as { host?: string; pid?: number }
    if (owner.host !== hostname() || owner.pid === undefined) return false
    try {
      process.kill(owner.pid, 0)
      return false
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'ESRCH'
    }
  } catch {
    return false
  }
}
