import { createHash, randomBytes } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdir, mkdtemp, rename, rm, stat, writeFile } from 'node:fs/promises'
import { posix } from 'node:path'
import { join } from 'node:path'
import type { Readable} from 'node:stream';
import { PassThrough, Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { Parser, create } from 'tar'
import type { ReadEntry } from 'tar'
import { MiosaError } from '../../core/errors.js'

// Docker 20.10's `docker save` writes the legacy docker-archive (<id>/layer.tar, <id>.json,
// manifest.json). Releases are stored as what Docker 25+ writes instead: one archive that
// is both an OCI image layout (oci-layout, index.json, blobs/sha256/…) and loadable by
// `docker load`, because its manifest.json points at the same blobs. Layers stay
// uncompressed tars, so their digests are the image's diff_ids and the config (hence the
// image digest) is kept byte for byte.

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json'
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json'
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar'
/** The config and manifest.json are small; a larger one is not an image archive. */
const MAX_JSON_BYTES = 16 * 1024 * 1024
/** Entries of the output get this mtime, so one image always makes the same archive. */
const FIXED_MTIME = new Date('1980-01-01T00:00:00Z')

export interface OciArchiveOptions {
  /** A private directory the layers are spooled to (removed when the output ends). */
  spoolDir: string
  /** A tag `docker load` puts on the image (e.g. miosa-release:<digest>); none when undefined. */
  repoTag?: string | undefined
  signal?: AbortSignal | undefined
}

export interface OciArchive {
  /** The archive; read it to its end or destroy it, either removes the spooled files. */
  stream: Readable
  /** The image digest: sha256 of its config, 64 hex. */
  digest: string
  /** The digest of the OCI manifest. */
  manifestDigest: string
}

interface DockerManifestEntry {
  Config: string
  RepoTags?: string[] | null
  Layers: string[]
}

interface Blob {
  digest: string
  size: number
}

/** Reads a `docker save` stream to its end and answers the same image as an OCI + docker-load archive. */
export async function dockerArchiveToOci(input: Readable, o: OciArchiveOptions): Promise<OciArchive> {
  await mkdir(o.spoolDir, { recursive: true, mode: 0o700 })
  const dir = await mkdtemp(join(o.spoolDir, 'oci-'))
  try {
    const blobs = join(dir, 'blobs', 'sha256')
    await mkdir(blobs, { recursive: true })
    const { layers, links, json } = await spool(input, dir, o.signal)

    const manifestText = json.get('manifest.json')
    if (manifestText === undefined) throw bad('it has no manifest.json')
    const entries = JSON.parse(manifestText.toString('utf8')) as DockerManifestEntry[]
    const entry = entries[0]
    if (!Array.isArray(entries) || entries.length !== 1 || entry === undefined) throw bad('it does not hold exactly one image')
    const config = json.get(posix.normalize(entry.Config))
    if (config === undefined) throw bad(`its config ${entry.Config} is missing`)
    const configBlob: Blob = { digest: sha256(config), size: config.length }
    await writeFile(join(blobs, configBlob.digest), config)

    const layerBlobs: Blob[] = []
    for (const path of entry.Layers) {
      const blob = layers.get(resolveLink(posix.normalize(path), links))
      if (blob === undefined) throw bad(`its layer ${path} is missing`)
      layerBlobs.push(blob)
    }
    const diffIds = (JSON.parse(config.toString('utf8')) as { rootfs?: { diff_ids?: string[] } }).rootfs?.diff_ids ?? []
    if (diffIds.join() !== layerBlobs.map((b) => `sha256:${b.digest}`).join()) throw bad("its layers do not match the config's diff_ids")

    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: OCI_CONFIG, digest: `sha256:${configBlob.digest}`, size: configBlob.size },
        layers: layerBlobs.map((b) => ({ mediaType: OCI_LAYER, digest: `sha256:${b.digest}`, size: b.size })),
      }),
    )
    const manifestDigest = sha256(manifest)
    await writeFile(join(blobs, manifestDigest), manifest)
    const tag = o.repoTag === undefined ? undefined : splitTag(o.repoTag)
    const index = {
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        {
          mediaType: OCI_MANIFEST,
          digest: `sha256:${manifestDigest}`,
          size: manifest.length,
          ...(tag === undefined ? {} : { annotations: { 'io.containerd.image.name': `docker.io/library/${o.repoTag}`, 'org.opencontainers.image.ref.name': tag } }),
        },
      ],
    }
    await writeFile(join(dir, 'index.json'), JSON.stringify(index))
    await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }))
    const dockerManifest = [
      {
        Config: `blobs/sha256/${configBlob.digest}`,
        RepoTags: o.repoTag === undefined ? [] : [o.repoTag],
        Layers: layerBlobs.map((b) => `blobs/sha256/${b.digest}`),
      },
    ]
    await writeFile(join(dir, 'manifest.json'), JSON.stringify(dockerManifest))

    const names = [...new Set([configBlob, ...layerBlobs].map((b) => b.digest)), manifestDigest].sort()
    const paths = ['oci-layout', 'blobs', 'blobs/sha256', ...names.map((d) => `blobs/sha256/${d}`), 'index.json', 'manifest.json']
    const pack = create({ cwd: dir, portable: true, noDirRecurse: true, mtime: FIXED_MTIME }, paths)
    // Piped rather than async-iterated: destroying a Readable.from() of the pack waits on an
    // iterator that never settles, so an aborted export would never finish.
    const stream = new PassThrough()
    pack.on('error', (error: unknown) => stream.destroy(error as Error))
    pack.pipe(stream)
    stream.once('close', () => {
      if (!stream.writableFinished) (pack as unknown as { destroy?: () => void }).destroy?.()
      void rm(dir, { recursive: true, force: true })
    })
    return { stream, digest: configBlob.digest, manifestDigest }
  } catch (error) {
    await rm(dir, { recursive: true, force: true })
    throw error
  }
}

/** Layers to files named by their digest; small JSON files into memory; layer symlinks noted. */
async function spool(input: Readable, dir: string, signal: AbortSignal | undefined): Promise<{ layers: Map<string, Blob>; links: Map<string, string>; json: Map<string, Buffer> }> {
  const layers = new Map<string, Blob>()
  const links = new Map<string, string>()
  const json = new Map<string, Buffer>()
  const writes: Promise<void>[] = []
  const parser = new Parser({
    onReadEntry: (entry: ReadEntry) => {
      const path = posix.normalize(entry.path.replace(/^\.\//, '').replace(/\/+$/, ''))
      if (entry.type === 'SymbolicLink' && path.endsWith('/layer.tar')) {
        links.set(path, posix.join(posix.dirname(path), entry.linkpath ?? ''))
        entry.resume()
      } else if (entry.type === 'File' && path.endsWith('/layer.tar')) {
        const write = spoolLayer(entry, dir).then((blob) => void layers.set(path, blob))
        // Handled now: after a failure the parser may still hand over entries whose writes
        // then fail (their directory is gone), and nobody awaits those.
        write.catch(() => { /* see above */ })
        writes.push(write)
      } else if (entry.type === 'File' && !path.includes('/') && path.endsWith('.json') && entry.size <= MAX_JSON_BYTES) {
        const chunks: Buffer[] = []
        entry.on('data', (chunk: Buffer) => chunks.push(chunk))
        entry.on('end', () => json.set(path, Buffer.concat(chunks)))
      } else {
        entry.resume()
      }
    },
  })
  // tar's parser and entries are not node streams: destroyed midway they never close, so
  // neither a pipeline's own abort nor the layer writes can be waited for after a failure.
  const aborted = new Promise<never>((_resolve, reject) => {
    if (signal === undefined) return
    const onAbort = () => reject(signal.reason as Error)
    if (signal.aborted) onAbort()
    else signal.addEventListener('abort', onAbort, { once: true })
  })
  aborted.catch(() => { /* raced below; an abort after the end has nobody to tell */ })
  const parsed = pipeline(input, parser)
  parsed.catch(() => { /* raced below; a failure after an abort has nobody to tell */ })
  try {
    await Promise.race([parsed, aborted])
    await Promise.race([Promise.all(writes), aborted])
  } catch (error) {
    input.destroy()
    if (signal?.aborted === true) throw signal.reason
    throw error
  }
  return { layers, links, json }
}

/** One layer.tar into blobs/sha256/<its sha256>. */
async function spoolLayer(entry: ReadEntry, dir: string): Promise<Blob> {
  const temp = join(dir, `layer-${randomBytes(6).toString('hex')}`)
  const hash = createHash('sha256')
  let size = 0
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk)
      size += chunk.length
      done(null, chunk)
    },
  })
  await pipeline(entry as unknown as NodeJS.ReadableStream, tap, createWriteStream(temp))
  const digest = hash.digest('hex')
  const target = join(dir, 'blobs', 'sha256', digest)
  // The same layer twice (two empty layers) is one blob.
  if ((await stat(target).catch(() => undefined)) === undefined) await rename(temp, target)
  else await rm(temp, { force: true })
  return { digest, size }
}

/** docker save links a repeated layer to its first copy (../<id>/layer.tar). */
function resolveLink(path: string, links: ReadonlyMap<string, string>): string {
  let current = path
  for (let hops = 0; hops < 16; hops++) {
    const target = links.get(current)
    if (target === undefined) return current
    current = target
  }
  return current
}

function splitTag(repoTag: string): string {
  const colon = repoTag.lastIndexOf(':')
  return colon > repoTag.lastIndexOf('/') ? repoTag.slice(colon + 1) : 'latest'
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}

function bad(why: string): MiosaError {
  return new MiosaError('internal', `the image export is not a docker archive: ${why}`)
}
