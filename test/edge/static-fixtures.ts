import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { Header, create as createTar } from 'tar'
import type { BlobStore } from '../../src/blobs/blob-store.js'
import { FsBlobStore } from '../../src/blobs/fs/fs-blob-store.js'

// A static site for the edge's static tests: its files, a release tarball built with
// node-tar and stored in a real FsBlobStore in a temp directory.

const PARAGRAPH = '<p>Smile Dental keeps your teeth bright and your appointments on time. Book online today.</p>\n'

export const SITE: Record<string, string | Buffer> = {
  'index.html': `<!doctype html>\n<html><head><title>Smile</title><script type="module" src="/assets/app-Bx12cd34.js"></script></head>\n<body>\n${PARAGRAPH.repeat(30)}</body></html>\n`,
  'about/index.html': `<!doctype html><title>About</title>${PARAGRAPH.repeat(20)}`,
  'assets/app-Bx12cd34.js': `export const items = [${Array.from({ length: 300 }, (_, i) => `{ id: ${i}, name: "item ${i}" }`).join(', ')}]\nconsole.log(items.length)\n`,
  'main.3f2a1b9c.css': `${'.button { color: #123456; padding: 4px 8px; }\n'.repeat(60)}`,
  'style.css': 'body { margin: 0 }\n',
  'data.json': JSON.stringify({ hello: 'world', list: [1, 2, 3] }),
  'logo.png': Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489', 'hex'),
  'robots.txt': 'User-agent: *\nAllow: /\n',
  'my-component-library.js': `${'export function f() { return 1 }\n'.repeat(50)}`,
  'unknown.xyz': 'x',
}

export interface StaticFixture {
  tmp: string
  blobs: BlobStore
  /** Where releases are extracted. */
  releasesDir: string
  /** The site's release blob (tar.gz). */
  sha256: string
  /** blobs.get() calls so far. */
  gets: () => number
  close: () => Promise<void>
}

export async function startStaticFixture(): Promise<StaticFixture> {
  const tmp = await mkdtemp(join(tmpdir(), 'miosa-static-'))
  const store = new FsBlobStore(join(tmp, 'blobs'))
  let gets = 0
  const blobs: BlobStore = {
    name: store.name,
    put: (content, opts) => store.put(content, opts),
    get: (sha256) => {
      gets++
      return store.get(sha256)
    },
    has: (sha256) => store.has(sha256),
    stat: (sha256) => store.stat(sha256),
  }
  const sha256 = await storeSite(blobs, join(tmp, 'src'), SITE, { gzip: true })
  return {
    tmp,
    blobs,
    releasesDir: join(tmp, 'releases'),
    sha256,
    gets: () => gets,
    close: async () => {
      await chmodTree(tmp)
      await rm(tmp, { recursive: true, force: true })
    },
  }
}

/** Writes the files under `dir`, tars them (gzip or not) and stores the tarball. */
export async function storeSite(blobs: BlobStore, dir: string, files: Record<string, string | Buffer>, o: { gzip: boolean }): Promise<string> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true })
    await writeFile(join(dir, path), content)
  }
  const chunks: Buffer[] = []
  const stream = createTar({ cwd: dir, gzip: o.gzip, portable: true }, ['.'])
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk)
  return (await blobs.put(Buffer.concat(chunks))).sha256
}

/** A raw tarball of hand-made entries: for archives node-tar would never create (escaping paths, links). */
export function rawTar(entries: { path: string; type?: 'File' | 'SymbolicLink' | 'Link' | 'Directory'; body?: string; linkpath?: string }[]): Buffer {
  const blocks: Buffer[] = []
  for (const entry of entries) {
    const body = Buffer.from(entry.body ?? '')
    const type = entry.type ?? 'File'
    const header = new Header({
      path: entry.path,
      type,
      size: type === 'File' ? body.length : 0,
      mode: type === 'Directory' ? 0o755 : 0o644,
      mtime: new Date(),
      ...(entry.linkpath === undefined ? {} : { linkpath: entry.linkpath }),
    })
    const block = Buffer.alloc(512)
    header.encode(block, 0)
    blocks.push(block)
    if (type === 'File' && body.length > 0) blocks.push(body, Buffer.alloc((512 - (body.length % 512)) % 512))
  }
  blocks.push(Buffer.alloc(1024))
  return Buffer.concat(blocks)
}

/** Makes a read-only release tree removable again. */
async function chmodTree(root: string): Promise<void> {
  const { chmod, readdir } = await import('node:fs/promises')
  const visit = async (dir: string): Promise<void> => {
    await chmod(dir, 0o755).catch(() => {})
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => [])
    for (const entry of entries) if (entry.isDirectory()) await visit(join(dir, entry.name))
  }
  await visit(root)
}
