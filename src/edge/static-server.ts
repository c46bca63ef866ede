import { createReadStream } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import type { Stats } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { basename, join } from 'node:path'
import { pipeline } from 'node:stream'
import { sendPage } from './pages.js'

// Files of a static release (a directory extracted once and never changed: release-files.ts)
// served over HTTP. The hot path: a request whose path was seen before is answered from a
// bounded LRU of lookups (no stat, no path decoding) and, for small files, from memory.
//
// - Paths: percent-decoded once; `..`, `.`, NUL, backslashes and encoded slashes are
//   refused (400), so nothing outside the release directory is ever named.
// - A directory serves its index.html (`/docs` redirects to `/docs/` first, like nginx,
//   so relative links in the page resolve).
// - ETag: strong, from size, mtime and the release's sha256 (the directory's name): a
//   file of a release never changes. `If-None-Match` answers 304.
// - Cache-Control: hashed assets (under /assets/, or a name like `app-3f2a1b9c.js` /
//   `app.3f2a1b9c.js`) are `public, max-age=31536000, immutable`; HTML and everything else
//   is `no-cache` (revalidated every time, cheap with the ETag).
// - Precompressed `.br` / `.gz` siblings are sent when the client accepts them (brotli
//   first), with `Vary: Accept-Encoding`.
// - SPA fallback: a path with no file and no extension (or a request that accepts
//   text/html) gets /index.html.

export interface StaticSite {
  /** Paths that match no file get /index.html. */
  spaFallback: boolean
}

export interface StaticServerOptions {
  /** Bytes of file contents kept in memory (default 64 MiB). */
  maxCacheBytes?: number | undefined
  /** Files up to this size are kept in memory once read (default 256 KiB); larger ones are streamed. */
  maxCachedFileBytes?: number | undefined
  /** Path lookups remembered (default 20,000). */
  maxEntries?: number | undefined
}

const IMMUTABLE = 'public, max-age=31536000, immutable'
const REVALIDATE = 'no-cache'

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.cjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.csv': 'text/csv; charset=utf-8',
  '.xml': 'application/xml; charset=utf-8',
  '.svg': 'image/svg+xml; charset=utf-8',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.avif': 'image/avif',
  '.ico': 'image/x-icon',
  '.bmp': 'image/bmp',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
  '.otf': 'font/otf',
  '.eot': 'application/vnd.ms-fontobject',
  '.mp4': 'video/mp4',
  '.webm': 'video/webm',
  '.mp3': 'audio/mpeg',
  '.wav': 'audio/wav',
  '.ogg': 'audio/ogg',
  '.pdf': 'application/pdf',
  '.zip': 'application/zip',
  '.gz': 'application/gzip',
  '.br': 'application/octet-stream',
}
const DEFAULT_TYPE = 'application/octet-stream'

/** One representation of a file: as it is, or a precompressed sibling. */
interface Variant {
  path: string
  size: number
  etag: string
  /** Response headers of a 200, flat [name, value, …]. */
  headers: string[]
  /** Headers of a 304. */
  notModified: string[]
  body: Buffer | undefined
}

interface FileEntry {
  kind: 'file'
  /** Served since the last eviction sweep passed it (second chance). */
  used: boolean
  identity: Variant
  gzip: Variant | undefined
  br: Variant | undefined
  /** Entity tags of every representation, for If-None-Match. */
  etags: string[]
}

type Lookup = FileEntry | { kind: 'redirect' } | { kind: 'missing'; extensionless: boolean } | { kind: 'bad' }

const BAD: Lookup = { kind: 'bad' }
const ACCEPT_GZIP = 1
const ACCEPT_BR = 2

export class StaticServer {
  /** Lookups by release directory, then by request path (no per-request key to build). */
  private readonly roots = new Map<string, Map<string, Lookup>>()
  private count = 0
  private readonly encodings = new Map<string, number>()
  private cachedBytes = 0
  private readonly maxCacheBytes: number
  private readonly maxCachedFileBytes: number
  private readonly maxEntries: number

  constructor(options: StaticServerOptions = {}) {
    this.maxCacheBytes = options.maxCacheBytes ?? 64 * 1024 * 1024
    this.maxCachedFileBytes = options.maxCachedFileBytes ?? 256 * 1024
    this.maxEntries = options.maxEntries ?? 20_000
  }

  /**
   * Answers a request from the release directory `root`. `notFound` sends the 404 page
   * (the edge brands it).
   */
  serve<S extends StaticSite>(
    req: IncomingMessage,
    res: ServerResponse,
    root: string,
    site: S,
    notFound: (req: IncomingMessage, res: ServerResponse, site: S) => Promise<void>,
  ): void | Promise<void> {
    const method = req.method
    if (method !== 'GET' && method !== 'HEAD') {
      sendPage(req, res, { status: 405, title: 'Method not allowed', message: 'This site only answers GET and HEAD.' }, { allow: 'GET, HEAD' })
      return
    }
    const url = req.url ?? '/'
    const q = url.indexOf('?')
    const path = q === -1 ? url : url.slice(0, q)
    // The hot path: a path seen before whose file is in memory, answered without a promise.
    const hit = this.roots.get(root)?.get(path)
    if (hit?.kind === 'file') {
      hit.used = true
      const headers = headersOf(req.rawHeaders)
      const variant = this.negotiate(headers.acceptEncoding, hit)
      if (variant.body !== undefined || method === 'HEAD') {
        this.answer(res, method, hit, variant, headers.ifNoneMatch)
        return
      }
    }
    return this.serveLookup(req, res, root, site, notFound, url, q, path)
  }

  private async serveLookup<S extends StaticSite>(
    req: IncomingMessage,
    res: ServerResponse,
    root: string,
    site: S,
    notFound: (req: IncomingMessage, res: ServerResponse, site: S) => Promise<void>,
    url: string,
    q: number,
    path: string,
  ): Promise<void> {
    let found = await this.lookup(root, path)
    if (found.kind === 'bad') {
      sendPage(req, res, { status: 400, title: 'Bad request', message: 'The path of this request is not valid.' })
      return
    }
    if (found.kind === 'redirect') {
      res.writeHead(301, { location: `${path}/${q === -1 ? '' : url.slice(q)}`, 'content-length': 0, 'cache-control': REVALIDATE })
      res.end()
      return
    }
    if (found.kind === 'missing') {
      if (site.spaFallback && (found.extensionless || (headersOf(req.rawHeaders).accept ?? '').includes('text/html'))) {
        found = await this.lookup(root, '/index.html')
      }
      if (found.kind !== 'file') {
        await notFound(req, res, site)
        return
      }
    }
    await this.send(req, res, found)
  }

  /** Forgets every lookup and cached content (tests; a release directory never changes). */
  clear(): void {
    this.roots.clear()
    this.count = 0
    this.cachedBytes = 0
  }

  private async send(req: IncomingMessage, res: ServerResponse, file: FileEntry): Promise<void> {
    const headers = headersOf(req.rawHeaders)
    const variant = this.negotiate(headers.acceptEncoding, file)
    if (req.method !== 'HEAD' && variant.body === undefined && variant.size <= this.maxCachedFileBytes) {
      const body = await readFile(variant.path)
      if (variant.body === undefined) {
        variant.body = body
        this.cachedBytes += body.length
        this.evict()
      }
    }
    this.answer(res, req.method, file, variant, headers.ifNoneMatch)
  }

  /** 304, HEAD, or the body from memory or streamed from the file. */
  private answer(res: ServerResponse, method: string | undefined, file: FileEntry, variant: Variant, ifNoneMatch: string | undefined): void {
    if (ifNoneMatch !== undefined && matches(ifNoneMatch, file.etags)) {
      res.writeHead(304, variant.notModified)
      res.end()
      return
    }
    res.writeHead(200, variant.headers)
    if (method === 'HEAD') {
      res.end()
      return
    }
    if (variant.body !== undefined) {
      res.end(variant.body)
      return
    }
    pipeline(createReadStream(variant.path), res, (error) => {
      if (error !== undefined && error !== null && !res.destroyed) res.destroy()
    })
  }

  private negotiate(header: string | undefined, file: FileEntry): Variant {
    if (header === undefined || (file.br === undefined && file.gzip === undefined)) return file.identity
    let accepted = this.encodings.get(header)
    if (accepted === undefined) {
      accepted = parseAcceptEncoding(header)
      if (this.encodings.size >= 256) this.encodings.clear()
      this.encodings.set(header, accepted)
    }
    if (file.br !== undefined && (accepted & ACCEPT_BR) !== 0) return file.br
    if (file.gzip !== undefined && (accepted & ACCEPT_GZIP) !== 0) return file.gzip
    return file.identity
  }

  private async lookup(root: string, path: string): Promise<Lookup> {
    const hit = this.roots.get(root)?.get(path)
    if (hit !== undefined) {
      if (hit.kind === 'file') hit.used = true
      return hit
    }
    const found = await this.find(root, path)
    let paths = this.roots.get(root)
    if (paths?.has(path) === true) return paths.get(path) as Lookup // found meanwhile by a concurrent request
    if (this.count >= this.maxEntries) this.dropOne()
    paths = this.roots.get(root)
    if (paths === undefined) {
      paths = new Map()
      this.roots.set(root, paths)
    }
    paths.set(path, found)
    this.count++
    return found
  }

  private async find(root: string, path: string): Promise<Lookup> {
    const relative = normalizePath(path)
    if (relative === undefined) return BAD
    const last = relative.slice(relative.lastIndexOf('/') + 1)
    const extensionless = !last.includes('.')
    let file = relative === '' ? root : join(root, relative)
    let info = await statOf(file)
    if (info?.isDirectory()) {
      if (!path.endsWith('/')) return { kind: 'redirect' }
      file = join(file, 'index.html')
      info = await statOf(file)
    }
    if (info === undefined || !info.isFile()) return { kind: 'missing', extensionless }
    return this.entryOf(root, relative, file, info)
  }

  private async entryOf(root: string, relative: string, file: string, info: Stats): Promise<FileEntry> {
    const name = basename(file)
    const dot = name.lastIndexOf('.')
    const extension = dot === -1 ? '' : name.slice(dot).toLowerCase()
    const type = TYPES[extension] ?? DEFAULT_TYPE
    const cacheControl = extension !== '.html' && extension !== '.htm' && isHashed(relative, name) ? IMMUTABLE : REVALIDATE
    const release = basename(root).slice(0, 12)
    const tag = `${info.size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}-${release}`
    const [gzInfo, brInfo] = await Promise.all([statOf(`${file}.gz`), statOf(`${file}.br`)])
    const compressed = gzInfo?.isFile() === true || brInfo?.isFile() === true
    const variant = (path: string, size: number, encoding: string | undefined): Variant => {
      const etag = `"${tag}${encoding === undefined ? '' : `-${encoding}`}"`
      const common = ['ETag', etag, 'Cache-Control', cacheControl]
      if (compressed) common.push('Vary', 'Accept-Encoding')
      const headers = ['Content-Type', type, 'Content-Length', String(size), ...common, 'X-Content-Type-Options', 'nosniff']
      if (encoding !== undefined) headers.push('Content-Encoding', encoding)
      return { path, size, etag, headers, notModified: common, body: undefined }
    }
    const identity = variant(file, info.size, undefined)
    const gzip = gzInfo?.isFile() === true ? variant(`${file}.gz`, gzInfo.size, 'gzip') : undefined
    const br = brInfo?.isFile() === true ? variant(`${file}.br`, brInfo.size, 'br') : undefined
    const etags = [identity.etag]
    if (gzip !== undefined) etags.push(gzip.etag)
    if (br !== undefined) etags.push(br.etag)
    return { kind: 'file', used: false, identity, gzip, br, etags }
  }

  /** Drops lookups until the cached contents fit the budget. */
  private evict(): void {
    while (this.cachedBytes > this.maxCacheBytes && this.count > 0) this.dropOne()
  }

  /**
   * Drops one lookup, oldest first, but a file served since the sweep last passed it gets a
   * second chance (CLOCK: nearly LRU, and a hit costs one boolean write, not a Map move).
   */
  private dropOne(): void {
    for (const [root, paths] of this.roots) {
      for (let steps = paths.size; steps > 0; steps--) {
        const first = paths.entries().next()
        if (first.done === true) break
        const [path, entry] = first.value
        paths.delete(path)
        if (entry.kind === 'file' && entry.used) {
          entry.used = false
          paths.set(path, entry)
          continue
        }
        this.forget(root, paths, entry)
        return
      }
    }
    // Everything was used since the last sweep (flags are cleared now): the oldest goes.
    const first = this.roots.entries().next()
    if (first.done === true) return
    const [root, paths] = first.value
    const oldest = paths.entries().next()
    if (oldest.done === true) {
      this.roots.delete(root)
      return
    }
    paths.delete(oldest.value[0])
    this.forget(root, paths, oldest.value[1])
  }

  private forget(root: string, paths: Map<string, Lookup>, entry: Lookup): void {
    this.count--
    if (paths.size === 0) this.roots.delete(root)
    if (entry.kind !== 'file') return
    for (const v of [entry.identity, entry.gzip, entry.br]) {
      if (v?.body !== undefined) {
        this.cachedBytes -= v.body.length
        v.body = undefined
      }
    }
  }
}

/**
 * The path below the release root (no leading slash; '' for the root), or undefined when
 * it is not acceptable: bad percent-encoding, an encoded slash or backslash, NUL, a
 * backslash, a `.` or `..` segment.
 */
export function normalizePath(path: string): string | undefined {
  if (path.charCodeAt(0) !== 47) return undefined
  let decoded = path
  if (path.includes('%')) {
    if (/%(?:2f|5c|00)/i.test(path)) return undefined
    try {
      decoded = decodeURIComponent(path)
    } catch {
      return undefined
    }
  }
  if (decoded.includes('\0') || decoded.includes('\\')) return undefined
  const segments: string[] = []
  for (const segment of decoded.split('/')) {
    if (segment === '') continue
    if (segment === '.' || segment === '..') return undefined
    segments.push(segment)
  }
  return segments.join('/')
}

/** Whether a file's name says its content never changes: under /assets/, or a hash-like segment before the extension. */
export function isHashed(relative: string, name: string): boolean {
  if (relative.startsWith('assets/')) return true
  const dot = name.lastIndexOf('.')
  if (dot <= 0) return false
  const stem = name.slice(0, dot)
  const cut = Math.max(stem.lastIndexOf('-'), stem.lastIndexOf('.'))
  if (cut <= 0) return false
  const hash = stem.slice(cut + 1)
  // At least 8 characters of [A-Za-z0-9_], a digit among them (words are not hashes).
  return hash.length >= 8 && /^[A-Za-z0-9_]+$/.test(hash) && /\d/.test(hash)
}

/** Accepted encodings as bits: ACCEPT_GZIP, ACCEPT_BR (`q=0` refuses; `*` accepts both). */
export function parseAcceptEncoding(header: string): number {
  let accepted = 0
  for (const part of header.split(',')) {
    const semi = part.indexOf(';')
    const token = (semi === -1 ? part : part.slice(0, semi)).trim().toLowerCase()
    if (semi !== -1) {
      const q = /q\s*=\s*([0-9.]+)/i.exec(part.slice(semi))
      if (q !== null && Number(q[1]) === 0) continue
    }
    if (token === 'br') accepted |= ACCEPT_BR
    else if (token === 'gzip' || token === 'x-gzip') accepted |= ACCEPT_GZIP
    else if (token === '*') accepted |= ACCEPT_BR | ACCEPT_GZIP
  }
  return accepted
}

interface RequestHeaders {
  acceptEncoding: string | undefined
  ifNoneMatch: string | undefined
  accept: string | undefined
}

/** The three request headers the static server reads, in one pass over the raw headers (node builds `req.headers` lazily: not for this). */
function headersOf(raw: string[]): RequestHeaders {
  const found: RequestHeaders = { acceptEncoding: undefined, ifNoneMatch: undefined, accept: undefined }
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string
    if (name.length === 15) {
      if (name.toLowerCase() === 'accept-encoding') found.acceptEncoding = found.acceptEncoding === undefined ? raw[i + 1] : `${found.acceptEncoding}, ${raw[i + 1]}`
    } else if (name.length === 13) {
      if (name.toLowerCase() === 'if-none-match') found.ifNoneMatch = found.ifNoneMatch === undefined ? raw[i + 1] : `${found.ifNoneMatch}, ${raw[i + 1]}`
    } else if (name.length === 6 && name.toLowerCase() === 'accept') {
      found.accept = found.accept === undefined ? raw[i + 1] : `${found.accept}, ${raw[i + 1]}`
    }
  }
  return found
}

/** Whether an If-None-Match header names one of the tags (weak comparison, as RFC 9110 asks for it). */
function matches(header: string, etags: string[]): boolean {
  if (header.trim() === '*') return true
  for (const raw of header.split(',')) {
    let tag = raw.trim()
    if (tag.startsWith('W/')) tag = tag.slice(2)
    if (etags.includes(tag)) return true
  }
  return false
}

async function statOf(path: string): Promise<Stats | undefined> {
  try {
    return await stat(path)
  } catch {
    return undefined
  }
}
