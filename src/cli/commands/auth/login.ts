import { createInterface } from 'node:readline/promises'
import type { Command } from 'commander'
import { MiosaClient } from '../../../sdk/index.js'
import { readCliConfig, writeCliConfig } from '../../config-file.js'
import { command, run } from '../../command.js'

/** The key from the flag, else piped on stdin (`miosa login < root-key`), else asked for on a terminal. */
async function readKey(flag: unknown): Promise<string> {
  if (typeof flag === 'string') return flag
  if (!process.stdin.isTTY) {
    let text = ''
    for await (const chunk of process.stdin) text += String(chunk)
    return text.trim()
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr })
  try {
    return (await rl.question('API key (msk_…): ')).trim()
  } finally {
    rl.close()
  }
}

export function registerLogin(program: Command): void {
  const cmd = command(program, 'login', 'check an API URL and key, then remember them for later commands (0600 config file)')
    .option('--url <url>', 'API URL (default: the saved one, else http://127.0.0.1:8080)')
    .option('--key <key>', 'API key (msk_…); without it, read from stdin or asked for')
  run(cmd, async (_ctx, _args, opts) => {
    const saved = await readCliConfig()
    const apiUrl = (opts.url as string | undefined) ?? (opts.apiUrl as string | undefined) ?? saved.api_url ?? 'http://127.0.0.1:8080'
    const apiKey = await readKey(opts.key ?? opts.apiKey)
    if (apiKey === '') throw new Error('no API key given: pass --key msk_… or pipe it on stdin')
    // Verify before saving, so a typo never lands in the config file.
    const who = await new MiosaClient({ apiUrl, apiKey }).whoami()
    const path = await writeCliConfig({ api_url: apiUrl, api_key: apiKey })
    const as = who.kind === 'root' ? 'the platform root' : `organization ${who.organization?.slug} (${who.organization?.id})`
    return { data: { api_url: apiUrl, config_file: path, ...who }, human: `Logged in to ${apiUrl} as ${as}.\nSaved to ${path}` }
  })
}
