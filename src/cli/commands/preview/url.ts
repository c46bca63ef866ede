import type { Command } from 'commander'
import { Option } from 'commander'
import { command, portFlag, run } from '../../command.js'

export function registerUrl(parent: Command): void {
  const cmd = command(parent, 'url <sandbox-id>', "print the preview URL of a port of a sandbox (default: its template's default port)")
    .addOption(new Option('--port <port>', 'the port inside the sandbox, e.g. 3000 or 5173').argParser(portFlag()))
    .addHelpText(
      'after',
      `
Examples:
  miosa preview url <sandbox-id> --port 3000
  miosa preview-token create <sandbox-id> --ttl 1h --port 3000     a URL that opens it for one hour`,
    )
  run(cmd, async ({ client }, [id], opts) => {
    const preview = await (await client()).sandboxes.previewUrl(id as string, opts.port === undefined ? {} : { port: opts.port as number })
    return { data: preview, human: `${preview.url}${preview.public ? '' : '   (private: open it with a preview or share token)'}` }
  })
}
