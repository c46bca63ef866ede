import { lstat, readdir, readlink } from 'node:fs/promises'
import { join, posix } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { Parser, create, extract } from 'tar'
import type { ReadEntry } from 'tar'
import type { Logger } from 'pino'
import { MiosaError } from '../core/errors.js'

// Snapshots and releases are normalized tarballs, so the same files always make the same
// bytes and so the same sha256: entries sorted by name, every mtime the same fixed date,
// no owners (uid/gid 0, empty names), no atime/ctime, modes umask-022-normalized, and
// gzip with node-tar's portable header (no time, no OS). A tarball is first extracted
// into a private temporary directory (which filters and sorts it), then packed from there.

/** The mtime of every entry: 1980-01-01, the oldest date every archive format can hold. */
export const FIXED_MTIME = new Date('1980-01-01T00:00:00Z')

const KEPT_TYPES = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link'])

/** Relative, `/`-separated, no `./` or trailing slash; '' for the root itself. */
export function entryPath(raw: string): string {
  const normal = posix.normalize(raw.replace(/\/+$/, ''))
  return normal === '.' ? '' : normal.replace(/^\.\//, '')
}

/** Whether a link stays inside the tree: its target is relative and resolves below the root. */
export function linkStaysInside(path: string, target: string, symbolic: boolean): boolean {
  if (target === '' || posix.isAbsolute(target)) return false
  const resolved = posix.normalize(symbolic ? posix.join(posix.dirname(path), target) : target)
  return resolved !== '..' && !resolved.startsWith('../')
}

/**
 * Extracts a tar (or tar.gz) stream into `dir`, keeping entries `keep` accepts. Device and
 * FIFO entries, names that would escape, and links out of the tree are left out.
 */
export async function extractInto(dir: string, tar: Readable, keep: (path: string, isDir: boolean) => boolean, logger?: Logger): Promise<void> {
  const unpack = extract({
    cwd: dir,
    preserveOwner: false,
    noChmod: false,
    filter: (raw: string, entry: unknown) => {
      const e = entry as ReadEntry
      if (!KEPT_TYPES.has(e.type)) return false
      const path = entryPath(raw)
      if (path === '' || path === '..' || path.startsWith('../') || posix.isAbsolute(path)) return false
      if ((e.type === 'SymbolicLink' || e.type === 'Link') && !linkStaysInside(path, e.linkpath ?? '', e.type === 'SymbolicLink')) {
        logger?.warn({ path, target: e.linkpath }, 'left out of the archive: a link outside the tree')
        return false
      }
      return keep(path, e.type === 'Directory')
    },
    onwarn: (code: string, message: string | Error) => logger?.debug({ code, message: String(message) }, 'tar extract warning'),
  })
  try {
    await pipeline(tar, unpack)
  } catch (error) {
    if (error instanceof MiosaError) throw error
    throw new MiosaError('invalid', `not a valid tar archive (${(error as Error).message})`, { cause: error })
  }
}

export interface TreeListing {
  /** Every kept path (directories included), sorted by code unit. */
  paths: string[]
  /** Regular files and links. */
  files: number
}

/** Lists `dir` recursively, skipping what `skip` names (and all below a skipped directory) and links out of the tree. */
export async function listTree(dir: string, skip: (path: string, isDir: boolean) => boolean = () => false): Promise<TreeListing> {
  const paths: string[] = []
  let files = 0
  const walk = async (rel: string): Promise<void> => {
    const entries = await readdir(rel === '' ? dir : join(dir, rel), { withFileTypes: true })
    for (const entry of entries) {
      const path = rel === '' ? entry.name : `${rel}/${entry.name}`
      const isDir = entry.isDirectory()
      if (skip(path, isDir)) continue
      if (entry.isSymbolicLink()) {
        if (!linkStaysInside(path, await readlink(join(dir, path)), true)) continue
      } else if (!isDir && !entry.isFile()) continue
      paths.push(path)
      if (isDir) await walk(path)
      else files++
    }
  }
  await walk('')
  paths.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
  return { paths, files }
}

/** The normalized tar.gz of the listed paths of `dir`. */
export function packTree(dir: string, paths: readonly string[]): Readable {
  const pack = create({ cwd: dir, portable: true, mtime: FIXED_MTIME, noDirRecurse: true, follow: false, gzip: { level: 6 } }, [...paths])
  // node-tar streams are Minipass streams: async-iterable, not node Readables.
  return Readable.from(pack as AsyncIterable<Buffer>)
}

/** Whether `path` under `dir` is a directory (following nothing). */
export async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await lstat(path)).isDirectory()
  } catch {
    return false
  }
}

export interface TarIndex {
  /** Regular files and links, sorted. */
  files: string[]
  /** Contents of the small files asked for that exist. */
  contents: Map<string, string>
}

/** Reads a (normalized) tarball's file names, and the text of the named small files. */
export async function indexTar(tar: Readable, wanted: (path: string) => boolean, maxBytes = 1024 * 1024): Promise<TarIndex> {
  const files: string[] = []
  const contents = new Map<string, string>()
  const parser = new Parser({
    onReadEntry: (entry: ReadEntry) => {
      const path = entryPath(entry.path)
      if (entry.type !== 'Directory' && path !== '') files.push(path)
      if (entry.type === 'File' && wanted(path) && entry.size <= maxBytes) {
        const chunks: Buffer[] = []
        entry.on('data', (chunk: Buffer) => chunks.push(chunk))
        entry.on('end', () => contents.set(path, Buffer.concat(chunks).toString('utf8')))
      } else {
        entry.resume()
      }
    },
  })
  await pipeline(tar, parser)
  files.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
  return { files, contents }
}
