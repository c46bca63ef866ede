import { randomUUID } from 'node:crypto'
import type { Stats } from 'node:fs'
import { chmod, lstat, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { isAbsolute, join, posix } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { promisify } from 'node:util'
import { brotliCompress, constants as zlibConstants, gzip } from 'node:zlib'
import { Unpack } from 'tar'
import type { ReadEntry } from 'tar'
import { SHA256_PATTERN } from '../blobs/blob-store.js'
import type { BlobStore } from '../blobs/blob-store.js'
import { MiosaError } from '../core/errors.js'

// A static release's files on disk: the release tarball (tar or tar.gz, from the blob
// store under its sha256) extracted once into `<dir>/<sha256>` and never changed again.
//
// - Atomic: extracted into `<dir>/.tmp-<sha256>-<uuid>`, then renamed into place; a crash
//   leaves only a temp directory, never a half-filled release. Concurrent callers in one
//   process share one extraction; another process extracting the same release at the same
//   time loses the rename race harmlessly (same bytes) and uses the winner's directory.
// - Safe: only regular files and directories are extracted (no symlinks, hard links or
//   devices, which could point outside); an entry with an absolute path or a `..` segment
//   fails the whole release.
// - Read-only afterwards: files 0444, directories 0555.
// - Precompressed: text-like files above 1 KiB get `.gz` (gzip level 9) and `.br` (brotli
//   quality 11) siblings when those are smaller, for the static server to send as they are.

export type ReleaseFiles = (sha256: string) => Promise<string>

/** Extensions worth compressing (images, fonts and archives are compressed already). */
export const COMPRESSIBLE_EXTENSIONS = new Set([
  '.html', '.htm', '.css', '.js', '.mjs', '.cjs', '.json', '.map', '.svg', '.txt', '.xml', '.wasm',
  '.webmanifest', '.csv', '.md', '.ico', '.ttf', '.otf', '.eot',
])

/** Smaller files are not worth a sibling: the saving is lost in headers. */
export const COMPRESS_MIN_BYTES = 1024
/** Above this, brotli uses quality 9 rather than 11 so one huge bundle cannot stall a release for minutes. */
const BROTLI_MAX_QUALITY_BYTES = 4 * 1024 * 1024
const COMPRESS_CONCURRENCY = 4

const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile'])
const gzipAsync = promisify(gzip)
const brotliAsync = promisify(brotliCompress)

export function createReleaseFiles(o: { blobs: BlobStore; dir: string }): ReleaseFiles {
  const pending = new Map<string, Promise<string>>()
  return (sha256) => {
    let promise = pending.get(sha256)
    if (promise === undefined) {
      promise = extractRelease(o.blobs, o.dir, sha256)
      pending.set(sha256, promise)
      // A failure is not remembered: the next request tries again.
      promise.catch(() => pending.delete(sha256))
    }
    return promise
  }
}

async function extractRelease(blobs: BlobStore, dir: string, sha256: string): Promise<string> {
  if (!SHA256_PATTERN.test(sha256)) throw new MiosaError('invalid', `not a release sha256: ${sha256}`)
  const final = join(dir, sha256)
  if (await isDirectory(final)) return final
  await mkdir(dir, { recursive: true })
  const tmp = join(dir, `.tmp-${sha256}-${randomUUID()}`)
  await mkdir(tmp, { mode: 0o755 })
  try {
    const tree = await unpack(await blobs.get(sha256), tmp)
    await precompressAll(tmp, tree)
    await makeReadOnly(tmp, tree)
    try {
      await rename(tmp, final)
    } catch (error) {
      // Another process renamed its copy first: same sha256, same files.
      if (await isDirectory(final)) {
        await removeTree(tmp)
        return final
      }
      throw error
    }
    return final
  } catch (error) {
    await removeTree(tmp).catch(() => { /* a leftover temporary tree is harmless; the error that follows says why */ })
    throw error
  }
}

/** What was extracted, from the archive's own entries (no walk of the tree afterwards). */
interface Tree {
  /** Relative path → size. */
  files: Map<string, number>
  /** Relative paths of directories (entries, and parents of files). */
  dirs: Set<string>
}

async function unpack(source: NodeJS.ReadableStream, cwd: string): Promise<Tree> {
  let refused: string | undefined
  const tree: Tree = { files: new Map(), dirs: new Set() }
  const unpacker = new Unpack({
    cwd,
    preserveOwner: false,
    // Modes from the archive are replaced by makeReadOnly() anyway.
    dmode: 0o755,
    fmode: 0o644,
    strict: true,
    filter: (path: string, entry: ReadEntry | Stats) => {
      const type = 'type' in entry ? entry.type : 'File'
      if (escapes(path)) {
        refused ??= path
        return false
      }
      const relative = posix.normalize(path).replace(/\/+$/, '')
      if (type === 'Directory') {
        if (relative !== '.' && relative !== '') addDirs(tree, relative)
        return true
      }
      if (!FILE_TYPES.has(type)) return false
      tree.files.set(relative, entry.size ?? 0)
      addDirs(tree, posix.dirname(relative))
      return true
    },
  })
  await pipeline(source, unpacker)
  if (refused !== undefined) throw new MiosaError('invalid', `the release has an entry outside its root: ${JSON.stringify(refused)}`)
  return tree
}

function addDirs(tree: Tree, relative: string): void {
  for (let d = relative; d !== '.' && d !== '' && !tree.dirs.has(d); d = posix.dirname(d)) tree.dirs.add(d)
}

function escapes(path: string): boolean {
  if (path.includes('\0') || path.includes('\\') || isAbsolute(path) || /^[a-zA-Z]:/.test(path)) return true
  const normalized = posix.normalize(path)
  return normalized === '..' || normalized.startsWith('../') || normalized.split('/').includes('..')
}

async function precompressAll(root: string, tree: Tree): Promise<void> {
  const work: [string, number][] = []
  for (const [path, size] of tree.files) {
    const dot = path.lastIndexOf('.')
    if (size >= COMPRESS_MIN_BYTES && dot !== -1 && COMPRESSIBLE_EXTENSIONS.has(path.slice(dot).toLowerCase())) work.push([path, size])
  }
  await forEachLimited(work, COMPRESS_CONCURRENCY, async ([path, size]) => {
    // A sibling the site ships itself is kept (and served) as it is.
    const wantGz = !tree.files.has(`${path}.gz`)
    const wantBr = !tree.files.has(`${path}.br`)
    if (!wantGz && !wantBr) return
    const content = await readFile(join(root, path))
    const [gz, br] = await Promise.all([
      wantGz ? gzipAsync(content, { level: 9 }) : undefined,
      wantBr
        ? brotliAsync(content, {
            params: {
              [zlibConstants.BROTLI_PARAM_QUALITY]: size > BROTLI_MAX_QUALITY_BYTES ? 9 : 11,
              [zlibConstants.BROTLI_PARAM_SIZE_HINT]: content.length,
              [zlibConstants.BROTLI_PARAM_MODE]: zlibConstants.BROTLI_MODE_TEXT,
            },
          })
        : undefined,
    ])
    // Worth it only when it saves something beyond the Content-Encoding header.
    for (const [suffix, compressed] of [['.gz', gz], ['.br', br]] as const) {
      if (compressed === undefined || compressed.length >= content.length - 32) continue
      await writeFile(join(root, path + suffix), compressed, { flag: 'wx' })
      tree.files.set(path + suffix, compressed.length)
    }
  })
}

/** Files 0444, directories 0555 (chmod needs no write permission on the parent, so order does not matter). */
async function makeReadOnly(root: string, tree: Tree): Promise<void> {
  const targets: [string, number][] = []
  for (const path of tree.files.keys()) targets.push([join(root, path), 0o444])
  for (const path of tree.dirs) targets.push([join(root, path), 0o555])
  await forEachLimited(targets, 32, async ([path, mode]) => {
    await chmod(path, mode)
  })
  await chmod(root, 0o555)
}

async function forEachLimited<T>(items: T[], limit: number, run: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) await run(items[next++] as T)
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
}

/** Removes a tree that may be read-only (a loser of the rename race, a failed extraction). */
async function removeTree(root: string): Promise<void> {
  if (!(await exists(root))) return
  await chmod(root, 0o755).catch(() => { /* best effort: rm below reports what it cannot remove */ })
  await walk(root, async (path, isDir) => {
    if (isDir) await chmod(path, 0o755).catch(() => { /* best effort: rm below reports what it cannot remove */ })
  }).catch(() => { /* best effort: rm below reports what it cannot remove */ })
  await rm(root, { recursive: true, force: true })
}

/** Visits every entry under root (not root itself), parents before their children. */
async function walk(root: string, visit: (path: string, isDir: boolean) => Promise<void>): Promise<void> {
  const entries = await readdir(root, { withFileTypes: true })
  for (const entry of entries) {
    const path = join(root, entry.name)
    const isDir = entry.isDirectory()
    await visit(path, isDir)
    if (isDir) await walk(path, visit)
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory()
  } catch {
    return false
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path)
    return true
  } catch {
    return false
  }
}
