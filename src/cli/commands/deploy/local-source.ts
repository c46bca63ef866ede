import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { create as createTar } from 'tar'
import { IGNORE_FILE, alwaysIgnored, parseIgnoreFile } from '../../../builder/ignore-rules.js'

// A local directory as `miosa deploy <dir>` uploads it: the same paths a sandbox's source
// snapshot keeps (dependency, cache and VCS directories left out, and what the directory's
// own `.miosaignore` names), so a directory publishes as it would from a sandbox. The server
// applies the same rules again; leaving them out here keeps the upload small and keeps
// things that would be refused whole (a link in node_modules pointing out of the directory,
// as `npm link` makes) from being sent at all.

/** The gzipped tar of `dir` without what snapshots ignore, as a web stream for the SDK. */
export async function localSourceTar(dir: string): Promise<ReadableStream<Uint8Array>> {
  const text = await readFile(join(dir, IGNORE_FILE), 'utf8').catch(() => undefined)
  const rules = text === undefined ? undefined : parseIgnoreFile(text)
  const keep = (entry: string, isDir: boolean): boolean => {
    const path = entry.replace(/^\.\/?/, '').replace(/\/+$/, '')
    if (path === '') return true
    return !alwaysIgnored(path, isDir) && !(rules?.ignores(path, isDir) ?? false)
  }
  const tar = createTar({ gzip: true, cwd: dir, portable: true, filter: (path, stat) => keep(path, 'isDirectory' in stat && stat.isDirectory()) }, ['.'])
  // tar's streams are minipass, not node streams: Readable.from adapts its async iterator.
  return Readable.toWeb(Readable.from(tar)) as ReadableStream<Uint8Array>
}
