import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, open, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FsBlobStore } from '../../src/blobs/fs/fs-blob-store.js'
import { MiosaError } from '../../src/core/errors.js'
import { blobStoreContract } from './blob-store.case.js'

// The filesystem store: the shared contract, then what is particular to files on disk.

function blobPath(dir: string, sha256: string): string {
  return join(dir, 'sha256', sha256.slice(0, 2), sha256)
}

async function listOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw error
  }
}

blobStoreContract('fs', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'miosa-blobs-'))
  return {
    blobs: new FsBlobStore(dir),
    async corrupt(sha256) {
      const handle = await open(blobPath(dir, sha256), 'r+')
      try {
        const { size } = await handle.stat()
        const at = Math.floor(size / 2)
        const byte = Buffer.alloc(1)
        await handle.read(byte, 0, 1, at)
        byte[0] = (byte[0] ?? 0) ^ 0xff
        await handle.write(byte, 0, 1, at)
      } finally {
        await handle.close()
      }
    },
    temporaryFiles: () => listOrEmpty(join(dir, 'tmp')),
    async close() {
      await rm(dir, { recursive: true, force: true })
    },
  }
})

describe('FsBlobStore on disk', () => {
  let root: string
  let dir: string
  let blobs: FsBlobStore

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'miosa-blobs-disk-'))
    dir = join(root, 'blobs')
    blobs = new FsBlobStore(dir)
  })

  afterAll(async () => {
    await rm(root, { recursive: true, force: true })
  })

  it('keeps a blob at <dir>/sha256/<first two hex>/<sha256>, with exactly its bytes', async () => {
    const bytes = randomBytes(2048)
    const { sha256 } = await blobs.put(bytes)
    expect((await readFile(blobPath(dir, sha256))).equals(bytes)).toBe(true)
    expect(await readdir(join(dir, 'tmp'))).toEqual([])
  })

  it('a name that is not a digest never reaches the filesystem, even where a file waits for it', async () => {
    const bytes = randomBytes(64)
    const { sha256 } = await blobs.put(bytes)
    // Files planted where an unchecked name would lead: an uppercase twin, and outside the store.
    const upper = sha256.toUpperCase()
    await mkdir(join(dir, 'sha256', upper.slice(0, 2)), { recursive: true })
    await writeFile(blobPath(dir, upper), bytes)
    await writeFile(join(root, 'planted'), bytes)
    const escape = '../planted' // <dir>/sha256/../../planted is <root>/planted
    for (const name of [upper, escape]) {
      for (const call of [blobs.has(name), blobs.stat(name), blobs.get(name)]) {
        const error = await call.then(
          () => undefined,
          (e: unknown) => e,
        )
        expect(error).toBeInstanceOf(MiosaError)
        expect((error as MiosaError).code).toBe('invalid')
      }
    }
  })

  it('a read stream given up early releases its file', async () => {
    const { sha256 } = await blobs.put(randomBytes(4 * 1024 * 1024))
    const path = blobPath(dir, sha256)
    const openOnBlob = async () => {
      let count = 0
      for (const fd of await listOrEmpty('/proc/self/fd')) {
        const target = await readlink(join('/proc/self/fd', fd)).catch(() => '')
        if (target === path) count += 1
      }
      return count
    }
    // A client that disconnects mid-download: read a little, then destroy the stream.
    for (let i = 0; i < 3; i++) {
      const stream = await blobs.get(sha256)
      await new Promise<void>((resolve, reject) => {
        stream.once('readable', resolve)
        stream.once('error', reject)
      })
      stream.read()
      stream.destroy()
    }
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(await openOnBlob()).toBe(0)
  })
})
