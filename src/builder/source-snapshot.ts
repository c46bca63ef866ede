import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import type { Logger } from 'pino'
import type { BlobStore } from '../blobs/blob-store.js'
import { archiveChecker } from '../runtime/archive-check.js'
import type { RuntimeDriver, RuntimeRef } from '../runtime/runtime-driver.js'
import type { SourceSnapshot } from './builder.js'
import { IGNORE_FILE, alwaysIgnored, parseIgnoreFile } from './ignore-rules.js'
import { extractInto, listTree, packTree } from './normalized-tar.js'

// A source snapshot is the workspace frozen at publish time: a normalized tar.gz (see
// normalized-tar.ts) of /workspace without dependency, cache and VCS directories nor what
// `.miosaignore` names, stored in the blob store under its sha256. The sandbox goes on
// changing; the snapshot does not.

export const WORKSPACE = '/workspace'

export interface SnapshotContext {
  blobs: BlobStore
  /** Private scratch space: snapshots are extracted here, then packed sorted. */
  spoolDir: string
  logger?: Logger | undefined
  signal?: AbortSignal | undefined
}

/** Freezes the sandbox's /workspace. */
export async function captureSandboxSource(ctx: SnapshotContext, runtime: RuntimeDriver, sandbox: RuntimeRef): Promise<SourceSnapshot> {
  const tar = await runtime.downloadArchive(sandbox, WORKSPACE)
  return storeTree(ctx, tar, { ignores: true })
}

/** The same from an uploaded tar or tar.gz; refused whole when any entry would escape. */
export async function captureUploadedSource(ctx: SnapshotContext, tar: Readable, maxBytes: number): Promise<SourceSnapshot> {
  const checked = await archiveChecker({ spoolDir: ctx.spoolDir, maxBytes })(tar)
  try {
    return await storeTree(ctx, checked.open(), { ignores: true })
  } finally {
    await checked.discard()
  }
}

/**
 * Extracts a tar stream, leaves out what snapshots ignore (when `ignores`), and stores the
 * normalized tar.gz of the rest. Also makes releases from a build's output (no ignores).
 */
export async function storeTree(ctx: SnapshotContext, tar: Readable, o: { ignores: boolean }): Promise<SourceSnapshot> {
  await mkdir(ctx.spoolDir, { recursive: true, mode: 0o700 })
  const dir = await mkdtemp(join(ctx.spoolDir, 'tree-'))
  try {
    await extractInto(dir, tar, o.ignores ? (path, isDir) => !alwaysIgnored(path, isDir) : () => true, ctx.logger)
    return await storeDir(ctx, dir, o)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** Stores the normalized tar.gz of a directory on this machine. */
export async function storeDir(ctx: SnapshotContext, dir: string, o: { ignores: boolean }): Promise<SourceSnapshot> {
  let skip: ((path: string, isDir: boolean) => boolean) | undefined
  if (o.ignores) {
    const text = await readFile(join(dir, IGNORE_FILE), 'utf8').catch(() => undefined)
    const rules = text === undefined ? undefined : parseIgnoreFile(text)
    skip = (path, isDir) => alwaysIgnored(path, isDir) || (rules?.ignores(path, isDir) ?? false)
  }
  const listing = await listTree(dir, skip)
  const stored = await ctx.blobs.put(packTree(dir, listing.paths), ctx.signal === undefined ? {} : { signal: ctx.signal })
  return { sha256: stored.sha256, size_bytes: stored.size, files: listing.files }
}
