import { randomBytes } from 'node:crypto'
import { chmod, open, readFile, rename, rm } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { MiosaError } from '../core/errors.js'
import { formatMasterKey, generateMasterKey, parseMasterKey } from '../core/secret-box.js'
import type { MasterKeySource } from '../core/secret-box.js'

// Where the master key lives outside core. Either MIOSA_MASTER_KEY (the operator keeps it,
// e.g. in a secret manager; a rotation cannot write it back) or `<data-dir>/master-key`,
// made on first start (mode 0600) and read afterwards. The file holds one key per line, the
// current one first; a second line exists only while a rotation runs. Keys are never logged.

export const MASTER_KEY_FILE = 'master-key'

/** MIOSA_MASTER_KEY: one key, or `new,old` while a rotation done elsewhere is unfinished. */
export function envMasterKeySource(value: string): MasterKeySource {
  const keys = value.split(',').map((part, i) => parseMasterKey(part, i === 0 ? 'MIOSA_MASTER_KEY' : `MIOSA_MASTER_KEY (key ${i + 1})`))
  return {
    kind: 'env',
    load: async () => keys,
    save: async () => {},
  }
}

/** The key file in the data dir: made on first load (exclusively: of two processes starting at once, one makes it and both read it). */
export function fileMasterKeySource(path: string): MasterKeySource {
  const read = async (): Promise<Buffer[] | undefined> => {
    let text: string
    try {
      text = await readFile(path, 'utf8')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw error
    }
    const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))
    if (lines.length === 0) throw new MiosaError('internal', `the master key file ${path} holds no key`)
    return lines.map((line) => parseMasterKey(line, `the master key file ${path}`))
  }
  return {
    kind: 'file',
    async load() {
      const existing = await read()
      if (existing !== undefined) return existing
      const key = generateMasterKey()
      try {
        const handle = await open(path, 'wx', 0o600)
        try {
          await handle.writeFile(`${formatMasterKey(key)}\n`)
          await handle.sync()
        } finally {
          await handle.close()
        }
        return [key]
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
        return (await read()) ?? []
      }
    },
    async save(keys) {
      await writeKeyFile(path, keys)
    },
  }
}

/** Writes keys to `path` atomically (a temp file with mode 0600, synced, then renamed over it). */
export async function writeKeyFile(path: string, keys: readonly Buffer[], opts: { exclusive?: boolean } = {}): Promise<void> {
  const body = `${keys.map(formatMasterKey).join('\n')}\n`
  if (opts.exclusive === true) {
    const handle = await open(path, 'wx', 0o600)
    try {
      await handle.writeFile(body)
      await handle.sync()
    } finally {
      await handle.close()
    }
    return
  }
  const temp = join(dirname(path), `.${MASTER_KEY_FILE}.${randomBytes(6).toString('hex')}.tmp`)
  const handle = await open(temp, 'wx', 0o600)
  try {
    await handle.writeFile(body)
    await handle.sync()
  } finally {
    await handle.close()
  }
  try {
    await chmod(temp, 0o600)
    await rename(temp, path)
  } catch (error) {
    await rm(temp, { force: true })
    throw error
  }
}
