import { randomUUID } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, open, rm } from 'node:fs/promises'
import { posix, join } from 'node:path'
import type { Readable } from 'node:stream'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGunzip } from 'node:zlib'
import { Parser } from 'tar'
import type { ReadEntry } from 'tar'
import type { ArchiveChecker, CheckedArchive } from '../core/sandbox-operations.js'
import { MiosaError } from '../core/errors.js'

// Uploaded archives are spooled to disk and read through once before any byte reaches
// a sandbox, so an archive with one bad entry writes nothing at all. Refused: absolute
// names, `..` segments, links whose target lies outside the directory the archive is
// extracted into, and device or FIFO entries.

const ALLOWED_TYPES = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link'])

export function archiveChecker(opts: { spoolDir: string; maxBytes: number }): ArchiveChecker {
  return async (tar: Readable): Promise<CheckedArchive> => {
    await mkdir(opts.spoolDir, { recursive: true, mode: 0o700 })
    const file = join(opts.spoolDir, `upload-${randomUUID()}`)
    const discard = () => rm(file, { force: true })
    try {
      let size = 0
      const limit = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          size += chunk.length
          if (size > opts.maxBytes) done(new MiosaError('payload_too_large', `body: the archive is larger than ${opts.maxBytes} bytes`, { details: { field: 'body', limit_bytes: opts.maxBytes } }))
          else done(null, chunk)
        },
      })
      await pipeline(tar, limit, createWriteStream(file, { mode: 0o600 }))
      const gzipped = await isGzip(file)
      await checkEntries(file, gzipped)
      return {
        // GNU tar in the sandbox cannot sniff compression on a pipe, so gzip is undone here.
        open: () => (gzipped ? createReadStream(file).pipe(createGunzip()) : createReadStream(file)),
        discard,
      }
    } catch (error) {
      await discard()
      throw error
    }
  }
}

async function isGzip(file: string): Promise<boolean> {
  const handle = await open(file, 'r')
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(2), 0, 2, 0)
    return bytesRead === 2 && buffer[0] === 0x1f && buffer[1] === 0x8b
  } finally {
    await handle.close()
  }
}

function checkEntries(file: string, gzipped: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    let failure: MiosaError | undefined
    let entries = 0
    const parser = new Parser({
      strict: true,
      onReadEntry: (entry: ReadEntry) => {
        entries++
        failure ??= problemWith(entry)
        entry.resume()
      },
    })
    parser.on('error', (error: Error) => reject(new MiosaError('invalid', `body: not a valid tar archive (${error.message})`, { details: { field: 'body' } })))
    parser.on('end', () => {
      if (failure !== undefined) reject(failure)
      else if (entries === 0 && !gzipped) reject(new MiosaError('invalid', 'body: not a tar archive (no entries)', { details: { field: 'body' } }))
      else resolve()
    })
    createReadStream(file).on('error', reject).pipe(parser)
  })
}

function problemWith(entry: ReadEntry): MiosaError | undefined {
  const refuse = (why: string) =>
    new MiosaError('invalid', `archive entry ${JSON.stringify(entry.path)} refused: ${why}`, { details: { field: 'body', entry: entry.path } })
  if (!ALLOWED_TYPES.has(entry.type)) return refuse(`${entry.type} entries are not allowed`)
  const name = entry.path
  if (name.includes('\0')) return refuse('NUL in its name')
  if (posix.isAbsolute(name) || /^[A-Za-z]:/.test(name)) return refuse('absolute names are not allowed')
  if (escapes(name)) return refuse('it would land outside the target directory')
  if (entry.type === 'SymbolicLink' || entry.type === 'Link') {
    const target = entry.linkpath ?? ''
    if (posix.isAbsolute(target)) return refuse(`it links to the absolute path ${JSON.stringify(target)}`)
    // A symlink's target is relative to its own directory; a hard link's to the archive root.
    const resolved = entry.type === 'SymbolicLink' ? posix.join(posix.dirname(name), target) : target
    if (escapes(resolved)) return refuse(`it links outside the target directory (${JSON.stringify(target)})`)
  }
  return undefined
}

function escapes(path: string): boolean {
  const normal = posix.normalize(path)
  return normal === '..' || normal.startsWith('../')
}
