import { mkdir, stat } from 'node:fs/promises'
import { Readable } from 'node:stream'
import type { ReadableStream as NodeReadableStream } from 'node:stream/web'
import type { Command } from 'commander'
import { create as createTar, extract as extractTar } from 'tar'
import { command, run } from '../../command.js'

// Whole directories both ways as tar archives: `upload` packs a local directory (gzipped)
// into a sandbox directory, `download` unpacks a sandbox directory into a local one.

export function registerArchiveCommands(parent: Command): void {
  run(
    command(parent, 'upload <sandbox-id> <local-dir> <path>', 'copy a local directory into a directory of the sandbox (as a tar archive)').addHelpText(
      'after',
      '\nExample:\n  miosa sandbox upload <sandbox-id> ./site /workspace/site --json',
    ),
    async ({ client }, [id, local, path]) => {
      const info = await stat(local as string).catch(() => undefined)
      if (info === undefined || !info.isDirectory()) throw new Error(`${local} is not a local directory`)
      // tar's streams are minipass, not node streams: Readable.from adapts its async iterator.
      const tar = createTar({ gzip: true, cwd: local as string, portable: true }, ['.'])
      const body = Readable.toWeb(Readable.from(tar)) as ReadableStream<Uint8Array>
      const dir = await (await client()).sandboxes.uploadArchive(id as string, path as string, body, { gzip: true })
      return { data: dir, human: `uploaded ${local} to ${dir.path}` }
    },
  )

  run(
    command(parent, 'download <sandbox-id> <path> <local-dir>', 'copy a directory of the sandbox into a local directory (created when missing)'),
    async ({ client }, [id, path, local]) => {
      const stream = await (await client()).sandboxes.downloadArchiveStream(id as string, path as string)
      await mkdir(local as string, { recursive: true })
      let files = 0
      const unpack = extractTar({ cwd: local as string, onReadEntry: (entry) => void (entry.type === 'File' && files++) })
      const unpacked = new Promise<void>((resolve, reject) => {
        unpack.on('close', () => resolve())
        unpack.on('error', reject)
      })
      for await (const chunk of Readable.fromWeb(stream as NodeReadableStream<Uint8Array>)) {
        if (!unpack.write(chunk as Buffer)) await new Promise((resolve) => unpack.once('drain', resolve))
      }
      unpack.end()
      await unpacked
      return { data: { path, saved_to: local, files }, human: `downloaded ${files} files from ${path} to ${local}` }
    },
  )
}
