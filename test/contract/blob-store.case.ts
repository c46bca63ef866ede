import { createHash, randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { buffer } from 'node:stream/consumers'
import { expectMiosaError, rejection } from '../helpers/errors.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { BlobStore } from '../../src/blobs/blob-store.js'
import { MiosaError } from '../../src/core/errors.js'

// The contract every BlobStore runs (filesystem now, S3-compatible later): only the
// public interface, on real storage.

export interface MadeBlobStore {
  blobs: BlobStore
  /** Changes one stored byte of the blob behind the store's back (bit rot, a bad disk). */
  corrupt(sha256: string): Promise<void>
  /**
   * Names of the partial or temporary objects the store holds right now (the fs store's
   * tmp dir, an S3 store's unfinished multipart uploads); empty when no put is running.
   */
  temporaryFiles?(): Promise<string[]>
  close(): Promise<void>
}

const MB = 1024 * 1024

function sha256Of(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

/** A stream of `bytes` in chunks of `size`, arriving asynchronously. */
function streamOf(bytes: Buffer, size = 64 * 1024): Readable {
  const chunks: Buffer[] = []
  for (let offset = 0; offset < bytes.length; offset += size) chunks.push(bytes.subarray(offset, offset + size))
  return Readable.from(chunks, { objectMode: false })
}

export function blobStoreContract(name: string, make: () => Promise<MadeBlobStore>): void {
  describe(`BlobStore contract: ${name}`, () => {
    let made: MadeBlobStore | undefined
    let blobs: BlobStore

    beforeAll(async () => {
      made = await make()
      blobs = made.blobs
    })

    afterAll(async () => {
      await made?.close()
    })

    async function expectNoTemporaryFiles(): Promise<void> {
      if (made?.temporaryFiles === undefined) return
      expect(await made.temporaryFiles()).toEqual([])
    }

    describe('put and get', () => {
      it('put of a Buffer answers its sha256 and size, and get streams the same bytes', async () => {
        const bytes = randomBytes(10_000)
        const stat = await blobs.put(bytes)
        expect(stat).toEqual({ sha256: sha256Of(bytes), size: bytes.length })
        expect((await buffer(await blobs.get(stat.sha256))).equals(bytes)).toBe(true)
        await expectNoTemporaryFiles()
      })

      it('put of a Readable stream answers its sha256 and size', async () => {
        const bytes = randomBytes(300_000)
        const stat = await blobs.put(streamOf(bytes, 7_000))
        expect(stat).toEqual({ sha256: sha256Of(bytes), size: bytes.length })
        expect((await buffer(await blobs.get(stat.sha256))).equals(bytes)).toBe(true)
      })

      it('put of a plain Uint8Array', async () => {
        const bytes = new Uint8Array(randomBytes(1234))
        const stat = await blobs.put(bytes)
        expect(stat).toEqual({ sha256: sha256Of(bytes), size: 1234 })
        expect((await buffer(await blobs.get(stat.sha256))).equals(Buffer.from(bytes))).toBe(true)
      })

      it('an empty blob round-trips', async () => {
        const stat = await blobs.put(Buffer.alloc(0))
        expect(stat).toEqual({ sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', size: 0 })
        expect(await blobs.has(stat.sha256)).toBe(true)
        expect(await blobs.stat(stat.sha256)).toEqual(stat)
        expect((await buffer(await blobs.get(stat.sha256))).length).toBe(0)
      })

      it('a 5 MB random blob round-trips', async () => {
        const bytes = randomBytes(5 * MB)
        const stat = await blobs.put(streamOf(bytes))
        expect(stat).toEqual({ sha256: sha256Of(bytes), size: 5 * MB })
        expect(await blobs.stat(stat.sha256)).toEqual({ sha256: stat.sha256, size: 5 * MB })
        const back = await buffer(await blobs.get(stat.sha256))
        expect(back.length).toBe(5 * MB)
        expect(sha256Of(back)).toBe(stat.sha256)
        expect(back.equals(bytes)).toBe(true)
      })

      it('identical content put twice, or twice at once, is one blob under one name', async () => {
        const bytes = randomBytes(50_000)
        const first = await blobs.put(bytes)
        const second = await blobs.put(streamOf(bytes))
        expect(second).toEqual(first)
        const racing = await Promise.all([blobs.put(bytes), blobs.put(Buffer.from(bytes)), blobs.put(streamOf(bytes, 999))])
        for (const stat of racing) expect(stat).toEqual(first)
        expect(await blobs.stat(first.sha256)).toEqual(first)
        expect((await buffer(await blobs.get(first.sha256))).equals(bytes)).toBe(true)
        await expectNoTemporaryFiles()
      })
    })

    describe('has and stat', () => {
      it('answer false and undefined before a put, true and the size after', async () => {
        const bytes = randomBytes(4321)
        const sha256 = sha256Of(bytes)
        expect(await blobs.has(sha256)).toBe(false)
        expect(await blobs.stat(sha256)).toBeUndefined()
        await blobs.put(bytes)
        expect(await blobs.has(sha256)).toBe(true)
        expect(await blobs.stat(sha256)).toEqual({ sha256, size: 4321 })
      })

      it('get of an absent blob rejects as not_found', async () => {
        const absent = sha256Of(randomBytes(32))
        await expectMiosaError(blobs.get(absent), 'not_found')
      })
    })

    describe('names', () => {
      it('a name that is not 64 lowercase hex is rejected as invalid by get, has and stat', async () => {
        const stored = await blobs.put(randomBytes(100))
        const names = [
          '../../etc/passwd',
          `../${stored.sha256.slice(3)}`,
          stored.sha256.toUpperCase(),
          `${stored.sha256.slice(0, 63).toUpperCase()}f`,
          stored.sha256.slice(0, 63),
          `${stored.sha256}0`,
          `${stored.sha256}\n`,
          ` ${stored.sha256}`,
          `sha256:${stored.sha256}`,
          'g'.repeat(64),
          '',
        ]
        for (const sha256 of names) {
          await expectMiosaError(blobs.get(sha256), 'invalid')
          await expectMiosaError(blobs.has(sha256), 'invalid')
          await expectMiosaError(blobs.stat(sha256), 'invalid')
        }
        // The real name still works.
        expect(await blobs.has(stored.sha256)).toBe(true)
      })
    })

    describe('integrity', () => {
      it('a blob corrupted on disk fails on read, naming the corruption', async () => {
        const bytes = randomBytes(200_000)
        const { sha256 } = await blobs.put(bytes)
        await made?.corrupt(sha256)
        const stream = await blobs.get(sha256)
        const error = await rejection(buffer(stream))
        expect(error).toBeInstanceOf(MiosaError)
        expect((error as MiosaError).code).toBe('internal')
        expect((error as MiosaError).message).toContain('corrupt')
      })

      it('a put whose source fails midway leaves no blob and no temporary file', async () => {
        const sent: Buffer[] = []
        let reads = 0
        const source = new Readable({
          read() {
            reads += 1
            if (reads > 4) {
              this.destroy(new Error('source broke'))
              return
            }
            const chunk = randomBytes(64 * 1024)
            sent.push(chunk)
            this.push(chunk)
          },
        })
        const error = await rejection(blobs.put(source))
        expect((error as Error).message).toContain('source broke')
        expect(await blobs.has(sha256Of(Buffer.concat(sent)))).toBe(false)
        await expectNoTemporaryFiles()
      })

      it('an aborted put leaves no blob and no temporary file', async () => {
        const controller = new AbortController()
        const sent: Buffer[] = []
        const source = new Readable({
          read() {
            if (sent.length === 3) controller.abort()
            const chunk = randomBytes(64 * 1024)
            sent.push(chunk)
            setTimeout(() => this.push(chunk), 2)
          },
        })
        const error = await rejection(blobs.put(source, { signal: controller.signal }))
        expect((error as Error).name).toBe('AbortError')
        expect(await blobs.has(sha256Of(Buffer.concat(sent)))).toBe(false)
        await expectNoTemporaryFiles()
        // Nothing appears late either.
        await new Promise((resolve) => setTimeout(resolve, 100))
        await expectNoTemporaryFiles()
      })

      it('a put with an already-aborted signal stores nothing', async () => {
        const bytes = randomBytes(1000)
        const error = await rejection(blobs.put(bytes, { signal: AbortSignal.abort() }))
        expect((error as Error).name).toBe('AbortError')
        expect(await blobs.has(sha256Of(bytes))).toBe(false)
        await expectNoTemporaryFiles()
      })
    })
  })
}
