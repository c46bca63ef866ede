import type { Command } from 'commander'
import { readCliConfig, writeCliConfig } from '../../config-file.js'
import { command, run } from '../../command.js'

export function registerLogout(program: Command): void {
  run(command(program, 'logout', 'forget the saved API key (the URL stays)'), async () => {
    const { api_key: _key, ...rest } = await readCliConfig()
    const path = await writeCliConfig(rest)
    return { data: { logged_out: true, config_file: path }, human: `Removed the saved key from ${path}` }
  })
}
