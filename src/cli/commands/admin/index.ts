import { randomBytes } from 'node:crypto'
import { open, readFile } from 'node:fs/promises'
import type { Command } from 'commander'
import { command, run } from '../../command.js'

// `miosa admin`: platform administration with the root key. The master key is never printed:
// with --new-key-file the new key is written to (or read from) that file, mode 0600, for the
// operator to put in MIOSA_MASTER_KEY before the server's next restart.

export function registerAdmin(program: Command): void {
  const noun = program.command('admin').description('platform administration (root key only)')
  const rotate = command(noun, 'rotate-master-key', 're-encrypt every env value under a new master key without downtime, then drop the old key')
    .option(
      '--new-key-file <path>',
      'use the key in this file, or make one and write it there (mode 0600); needed when the server takes its key from MIOSA_MASTER_KEY',
    )
    .addHelpText(
      'after',
      '\nExamples:\n  miosa admin rotate-master-key                                   key kept in <data-dir>/master-key: the server makes and keeps the new one\n  miosa admin rotate-master-key --new-key-file /root/miosa-key.new  then set MIOSA_MASTER_KEY to its content before the next restart',
    )
  run(rotate, async ({ client }, _args, opts) => {
    const path = opts.newKeyFile as string | undefined
    const newKey = path === undefined ? undefined : await keyFromFile(path)
    const c = await client()
    // Naming the command is the operator's confirmation; the API wants it spelled out in the body.
    const confirm = 'rotate-master-key' as const
    const result = await c.admin.rotateMasterKey(newKey === undefined ? { confirm } : { confirm, new_key: newKey.key })
    const lines = [`${result.re_encrypted} value(s) re-encrypted under master key ${result.key_id}: ${result.message}`]
    if (path !== undefined) {
      lines.push(
        newKey?.made === true ? `the new key was written to ${path} (mode 0600)` : `the new key is the one in ${path}`,
        result.key_source === 'env' ? `set MIOSA_MASTER_KEY to the content of ${path} before the server restarts` : '',
      )
    }
    return { data: { ...result, ...(path === undefined ? {} : { new_key_file: path }) }, human: lines.filter((l) => l !== '').join('\n') }
  })
}

/** The key in `path`, or a new one written there (exclusively, mode 0600). */
async function keyFromFile(path: string): Promise<{ key: string; made: boolean }> {
  try {
    const text = (await readFile(path, 'utf8')).trim()
    if (text === '') throw new Error(`--new-key-file ${path} is empty: remove it to have a key made, or put a 32-byte key (base64 or hex) in it`)
    return { key: text, made: false }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
  const key = randomBytes(32).toString('base64')
  const handle = await open(path, 'wx', 0o600)
  try {
    await handle.writeFile(`${key}\n`)
    await handle.sync()
  } finally {
    await handle.close()
  }
  return { key, made: true }
}
