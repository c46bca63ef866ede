import { createHash, randomUUID } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdir, open, rename, rm, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { Readable, Transform, pipeline } from 'node:stream'
import { pipeline as pipelineAsync } from 'node:stream/promises'
import { MiosaError } from '../../core/errors.js'
import { SHA256_PATTERN } from '../blob-store.js'
import type { BlobStat, BlobStore } from '../blob-store.js'

/**
 * Blobs as files under `<dir>/sha256/ab/abcdef…`. A write streams into `<dir>/tmp/`,
 * hashing on the way, is fsynced, then renamed into place (rename is atomic on one
 * filesystem) and the directory fsynced, so a blob either exists whole or not at all.
 */
export class FsBlobStore implements BlobStore {
  readonly name = 'fs'

  constructor(private readonly dir: string) {}

  async put(content: Readable | Buffer | Uint8Array, opts?: { signal?: AbortSignal }): Promise<BlobStat> {
    opts?.signal?.throwIfAborted()
    const tmpDir = join(this.dir, 'tmp')
    await mkdir(tmpDir, { recursive: true })
    const tmp = join(tmpDir, randomUUID())
    // Open the file before streaming: a write stream that opens it itself may do so after an
    // early abort's cleanup has run, leaving a temporary file behind.
    const file = await open(tmp, 'wx')
    const hash = createHash('sha256')
    let size = 0
    const source = content instanceof Readable ? content : Readable.from([content])
    try {
      await pipelineAsync(
        source,
        new Transform({
          transform(chunk: Buffer, _encoding, done) {
            hash.update(chunk)
            size += chunk.length
            done(null, chunk)
          },
        }),
        file.createWriteStream(),
        opts?.signal === undefined ? {} : { signal: opts.signal },
      )
      await fsync(tmp)
      const sha256 = hash.digest('hex')
      const final = this.pathOf(sha256)
      await mkdir(dirname(final), { recursive: true })
      // Same name means same bytes: when the blob is already there the rename just replaces it with an identical copy.
      await rename(tmp, final)
      await fsync(dirname(final))
      return { sha256, size }
    } catch (error) {
      await file.close().catch(() => { /* the write error that follows is what the caller needs */ })
      await rm(tmp, { force: true })
      throw error
    }
  }

  async get(sha256: string): Promise<Readable> {
    const path = this.pathOf(sha256)
    if ((await this.stat(sha256)) === undefined) throw new MiosaError('not_found', `blob ${sha256} not found`)
    const hash = createHash('sha256')
    const verify = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        hash.update(chunk)
        done(null, chunk)
      },
      flush(done) {
        const actual = hash.digest('hex')
        done(
          actual === sha256
            ? null
            : new MiosaError('internal', `blob ${sha256} is corrupt: its stored bytes hash to ${actual}`, {
                details: { sha256, actual },
              }),
        )
      },
    })
    // pipeline (not pipe) ties the two together: a consumer that gives up early closes the file too.
    return pipeline(createReadStream(path), verify, () => {})
  }

  async has(sha256: string): Promise<boolean> {
    return (await this.stat(sha256)) !== undefined
  }

  async stat(sha256: string): Promise<BlobStat | undefined> {
    try {
      const info = await stat(this.pathOf(sha256))
      return { sha256, size: info.size }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw error
    }
  }

  /** The only way from a name to a path: a name that is not a sha256 never reaches the filesystem. */
  private pathOf(sha256: string): string {
    if (!SHA256_PATTERN.test(sha256)) {
      throw new MiosaError('invalid', `not a sha256 digest: ${JSON.stringify(sha256.slice(0, 80))}`, {
        details: { field: 'sha256' },
      })
    }
    return join(this.dir, 'sha256', sha256.slice(0, 2), sha256)
  }
}

async function fsync(path: string): Promise<void> {
  const handle = await open(path, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}
