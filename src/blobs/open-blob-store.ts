import type { BlobStore } from './blob-store.js'
import { FsBlobStore } from './fs/fs-blob-store.js'

export type BlobConfig = { kind: 'fs'; dir: string }

export function openBlobStore(config: BlobConfig): BlobStore {
  return new FsBlobStore(config.dir)
}
