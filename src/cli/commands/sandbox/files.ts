import { createReadStream, createWriteStream } from 'node:fs'
import { stat as statLocal } from 'node:fs/promises'
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { ReadableStream as NodeReadableStream } from 'node:stream/web'
import type { Command } from 'commander'
import type { FileStat as FileStatOutput } from '../../../sdk/index.js'
import { command, run } from '../../command.js'
import { renderPage, renderRecord } from '../../output.js'

// The sandbox's filesystem from the command line: one file at a time (write-file,
// read-file, stat), directories (ls, mkdir, mv, rm). Paths inside the sandbox are
// absolute or relative to /workspace; a local "-" is stdin or stdout.

const FILE_COLUMNS = ['name', 'type', 'size', 'mode', 'mtime'] as const

/** What a person sees for a file: octal permissions rather than the JSON number. */
function showStat(stat: FileStatOutput): Record<string, unknown> {
  return { ...stat, mode: stat.mode.toString(8).padStart(3, '0') }
}

export function registerFileCommands(parent: Command): void {
  run(
    command(parent, 'write-file <sandbox-id> <path> [local-file]', 'write a file in the sandbox from a local file, or from stdin when it is "-" or left out')
      .option('--mode <octal>', 'permission bits, e.g. 755')
      .addHelpText('after', '\nExamples:\n  miosa sandbox write-file <sandbox-id> /workspace/app/page.jsx ./page.jsx --json\n  echo hello | miosa sandbox write-file <sandbox-id> notes.txt'),
    async ({ client, stdin }, [id, path, local], opts) => {
      const source = local === undefined || local === '-' ? stdin : await localFile(local)
      const body = Readable.toWeb(source) as ReadableStream<Uint8Array>
      const written = await (await client()).sandboxes.writeFile(id as string, path as string, body, opts.mode === undefined ? {} : { mode: opts.mode as string })
      return { data: written, human: `wrote ${written.size} bytes to ${written.path}` }
    },
  )

  run(
    command(parent, 'read-file <sandbox-id> <path> [local-file]', 'print a file of the sandbox, or save it to a local file')
      .addHelpText('after', '\nWith --json the content is in the answer as base64 (data_base64).'),
    async ({ client, json, stdout }, [id, path, local]) => {
      const c = await client()
      if (json && local === undefined) {
        const bytes = await c.sandboxes.readFile(id as string, path as string)
        return { data: { path, size: bytes.length, data_base64: Buffer.from(bytes).toString('base64') } }
      }
      const stream = Readable.fromWeb(await c.sandboxes.readFileStream(id as string, path as string) as NodeReadableStream<Uint8Array>)
      if (local === undefined || local === '-') {
        // stdout stays open for the process: end only our pipe, not the stream.
        await pipeline(stream, new Writable({ write: (chunk: Buffer, _e, done) => (stdout.write(chunk) ? done() : stdout.once('drain', () => done())) }))
        return { data: { path }, human: '' }
      }
      await pipeline(stream, createWriteStream(local))
      const { size } = await statLocal(local)
      return { data: { path, saved_to: local, size }, human: `saved ${size} bytes to ${local}` }
    },
  )

  run(command(parent, 'ls <sandbox-id> [path]', 'list a directory of the sandbox (default /workspace)'), async ({ client }, [id, path]) => {
    const entries = await (await client()).sandboxes.listFiles(id as string, path ?? '/workspace')
    return { data: { entries }, human: renderPage({ data: entries.map(showStat), next_cursor: null }, FILE_COLUMNS) }
  })

  run(command(parent, 'stat <sandbox-id> <path>', 'show a file or directory of the sandbox'), async ({ client }, [id, path]) => {
    const stat = await (await client()).sandboxes.stat(id as string, path as string)
    return { data: stat, human: renderRecord(showStat(stat)) }
  })

  run(command(parent, 'mkdir <sandbox-id> <path>', 'create a directory in the sandbox, with its parents'), async ({ client }, [id, path]) => {
    const stat = await (await client()).sandboxes.mkdir(id as string, path as string)
    return { data: stat, human: `created ${stat.path}` }
  })

  run(
    command(parent, 'mv <sandbox-id> <from> <to>', 'move or rename a file or directory in the sandbox').option('--overwrite', 'replace <to> when it exists'),
    async ({ client }, [id, from, to], opts) => {
      const stat = await (await client()).sandboxes.move(id as string, from as string, to as string, { overwrite: opts.overwrite === true })
      return { data: stat, human: `moved ${from} to ${stat.path}` }
    },
  )

  run(
    command(parent, 'rm <sandbox-id> <path>', 'delete a file, or a directory with --recursive').option('-r, --recursive', 'delete a directory and everything in it'),
    async ({ client }, [id, path], opts) => {
      const result = await (await client()).sandboxes.remove(id as string, path as string, { recursive: opts.recursive === true })
      return { data: result, human: `deleted ${result.path}` }
    },
  )
}

/** A local file to upload, refused up front (not half-way through) when it is not one. */
async function localFile(path: string): Promise<Readable> {
  const info = await statLocal(path).catch(() => undefined)
  if (info === undefined) throw new Error(`local file ${path} does not exist`)
  if (!info.isFile()) throw new Error(`${path} is not a file`)
  return createReadStream(path)
}
