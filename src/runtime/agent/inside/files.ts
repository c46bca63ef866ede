// The file routes: read, write, list, move, remove. Run as the sandbox user (./file-server.ts)
// wherever the agent has one, so what its commands cannot read or write, these cannot either.

import { constants as fsConstants, createWriteStream } from 'node:fs'
import type { Stats } from 'node:fs'
import { chmod, chown, cp, lstat, open, readdir, realpath, rename, rm, rmdir, statfs, unlink } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { randomBytes } from 'node:crypto'
import { dirname, join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import type { FileStat } from '../protocol.js'
import { isRoot } from './config.js'
import { Failure, forbidden, invalid } from './http.js'
import { describe, ensureDir, statIfAny } from './paths.js'

/** A file whose size stat cannot tell (/proc, /sys) is read whole first, up to this much… */
const VIRTUAL_READ_LIMIT = 4 * 1024 * 1024
/** …and within this long. */
const VIRTUAL_READ_MS = 3_000
/** Filesystems whose files report a size unrelated to their content (statfs magic numbers). */
const VIRTUAL_FILESYSTEMS = new Set([
  0x9fa0, // proc
  0x62656572, // sysfs
  0x27e0eb, // cgroup
  0x63677270, // cgroup2
  0x64626720, // debugfs
  0x74726163, // tracefs
  0x73636673, // securityfs
])

/** EACCES, EPERM and ENOSPC name the path asked for, not a temporary file next to it. */
function denied(error: unknown, path: string): unknown {
  const code = (error as { code?: string }).code
  if (code === 'EACCES' || code === 'EPERM') return forbidden(path)
  if (code === 'ENOSPC' || code === 'EDQUOT') return new Failure(413, 'payload_too_large', `no space left on the device to write ${path}`)
  return error
}

export async function readFileTo(res: ServerResponse, path: string): Promise<void> {
  // Non-blocking: opening a FIFO must not wait for a writer.
  const handle = await open(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK).catch((error: unknown) => {
    throw denied(error, path)
  })
  let s: Stats
  let whole: Buffer | undefined
  try {
    s = await handle.stat()
    if (s.isDirectory()) throw invalid(`is a directory: ${path}`)
    if (!s.isFile()) throw invalid(`not a regular file (a device, FIFO or socket): ${path}`)
    if (s.size === 0 || VIRTUAL_FILESYSTEMS.has(Number((await statfs(path)).type))) whole = await readBounded(handle, path)
  } catch (error) {
    await handle.close()
    throw error
  }
  if (whole !== undefined) {
    await handle.close()
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': whole.length })
    res.end(whole)
    return
  }
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': s.size })
  // A file that shrinks while it is read breaks the connection rather than the next response.
  res.strictContentLength = true
  const stream = handle.createReadStream({ start: 0, end: s.size - 1 })
  try {
    await pipeline(stream, res)
  } catch {
    res.destroy()
  }
}

/** Reads to EOF, refusing more than VIRTUAL_READ_LIMIT bytes or VIRTUAL_READ_MS. */
async function readBounded(handle: FileHandle, path: string): Promise<Buffer> {
  const chunks: Buffer[] = []
  let size = 0
  const deadline = performance.now() + VIRTUAL_READ_MS
  for (;;) {
    const left = deadline - performance.now()
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Failure(408, 'invalid', `reading ${path} took over ${VIRTUAL_READ_MS} ms: read it with exec`)), Math.max(left, 0))
    })
    const buffer = Buffer.alloc(64 * 1024)
    try {
      const { bytesRead } = await Promise.race([handle.read(buffer, 0, buffer.length, null), timeout])
      if (bytesRead === 0) return Buffer.concat(chunks)
      size += bytesRead
      if (size > VIRTUAL_READ_LIMIT) throw new Failure(413, 'payload_too_large', `${path} is over ${VIRTUAL_READ_LIMIT} bytes: read it with exec`)
      chunks.push(buffer.subarray(0, bytesRead))
    } finally {
      clearTimeout(timer)
    }
  }
}

export async function writeFileFrom(req: IncomingMessage, requested: string, mode: number | undefined): Promise<FileStat> {
  try {
    return await writeAtomically(req, requested, mode)
  } catch (error) {
    throw denied(error, requested)
  }
}

async function writeAtomically(req: IncomingMessage, requested: string, mode: number | undefined): Promise<FileStat> {
  // Writing to a symlink writes where it points, as an editor would.
  const link = await statIfAny(requested, false)
  const path = link?.isSymbolicLink() === true ? await realpath(requested).catch(() => requested) : requested
  const existing = await statIfAny(path, true)
  if (existing?.isDirectory() === true) throw invalid(`is a directory: ${path}`)
  const dir = dirname(path)
  await ensureDir(dir)
  // Same directory, so the rename is atomic: readers see the old file or the new one, never half.
  const temp = join(dir, `.miosa-${randomBytes(6).toString('hex')}.tmp`)
  try {
    await receive(req, temp)
    await chmod(temp, mode ?? (existing === undefined ? 0o644 : existing.mode & 0o7777))
    // The sandbox user's writes are its own; an agent running as root (a root template) keeps a file's owner.
    if (existing !== undefined && isRoot) await chown(temp, existing.uid, existing.gid)
    await rename(temp, path)
  } catch (error) {
    await unlink(temp).catch(() => { /* the temp file may not exist; the write's own error follows */ })
    throw error
  }
  return describe(path)
}

/** The request body into a new file. On a failed write (a full disk) the rest of the body is read and dropped, so the caller gets the answer, not a reset connection. */
function receive(req: IncomingMessage, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const out = createWriteStream(path, { flags: 'wx', mode: 0o600 })
    out.once('error', (error) => {
      req.unpipe(out)
      req.resume()
      reject(error)
    })
    // A body cut short is not a file to put in place.
    out.once('finish', () => (req.complete ? resolve() : reject(new Failure(400, 'invalid', 'the request body ended early'))))
    req.once('error', (error) => {
      out.destroy()
      reject(error)
    })
    req.pipe(out)
  })
}

export async function list(path: string): Promise<FileStat[]> {
  const names = (await readdir(path)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
  const entries = await Promise.all(
    names.map((name) =>
      describe(join(path, name)).catch((error: unknown) => {
        // Gone between readdir and lstat: it is not in the listing.
        if ((error as { code?: string }).code === 'ENOENT') return undefined
        throw error
      }),
    ),
  )
  return entries.filter((e) => e !== undefined)
}

export async function move(from: string, to: string, overwrite: boolean): Promise<string> {
  const source = await lstat(from)
  if (from === to) return to
  if (to.startsWith(`${from}/`)) throw invalid(`cannot move ${from} into itself`)
  const target = await statIfAny(to, false)
  if (target !== undefined) {
    if (!overwrite) throw new Failure(409, 'conflict', `already exists: ${to}`)
    // rename replaces a file in one step; a directory (or a file by a directory) must go first.
    if (target.isDirectory() || source.isDirectory()) await rm(to, { recursive: true, force: true })
  }
  await ensureDir(dirname(to))
  try {
    await rename(from, to)
  } catch (error) {
    if ((error as { code?: string }).code !== 'EXDEV') throw error
    // Another filesystem (a volume, a tmpfs): copy, then remove.
    await cp(from, to, { recursive: true, force: true, preserveTimestamps: true, verbatimSymlinks: true })
    await rm(from, { recursive: true, force: true })
  }
  return to
}

export async function remove(path: string, recursive: boolean): Promise<void> {
  if (path === '/') throw invalid('refusing to delete /')
  const s = await lstat(path)
  if (!s.isDirectory()) await unlink(path)
  else if (recursive) await rm(path, { recursive: true, force: true })
  else await rmdir(path)
}

