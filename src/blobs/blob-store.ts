import type { Readable } from 'node:stream'

// Content-addressed storage: a blob's name is the sha256 of its bytes, so a blob never
// changes once written and the same content is stored once. The filesystem store is the
// embedded default; an S3-compatible store implements the same interface for a fleet,
// and both run test/contract/blob-store.case.ts.

export interface BlobStat {
  sha256: string
  size: number
}

export interface BlobStore {
  readonly name: string
  /** Stores the bytes and answers their sha256. Atomic: a crash never leaves a partial blob under a name. */
  put(content: Readable | Buffer | Uint8Array, opts?: { signal?: AbortSignal }): Promise<BlobStat>
  /**
   * The blob's bytes. The stream verifies the hash as it goes and fails with
   * MiosaError('internal', …corrupt…) at the end if the stored bytes no longer match.
   * A missing blob is MiosaError('not_found').
   */
  get(sha256: string): Promise<Readable>
  has(sha256: string): Promise<boolean>
  /** Size of a stored blob, or undefined when absent. */
  stat(sha256: string): Promise<BlobStat | undefined>
}

export const SHA256_PATTERN = /^[0-9a-f]{64}$/
