import type { Command } from 'commander'
import { Option } from 'commander'
import type { CreatePreviewTokenInput } from '../../../sdk/index.js'
import { attributionFrom, attributionOptions, command, durationFlag, portFlag, run } from '../../command.js'

export function registerCreate(parent: Command): void {
  const cmd = attributionOptions(
    command(parent, 'create <sandbox-id>', 'mint a preview token; its value and URL are shown once')
      .addOption(new Option('--ttl <duration>', 'how long it works: 90s, 10m, 1h, up to 24h').argParser(durationFlag('--ttl')).makeOptionMandatory())
      .addOption(new Option('--port <port>', 'the one port it opens (default: any port; the URL uses the default port)').argParser(portFlag())),
  ).addHelpText(
    'after',
    `
Examples:
  miosa preview-token create <sandbox-id> --ttl 1h --json
  miosa preview-token create <sandbox-id> --ttl 10m --port 5173`,
  )
  run(cmd, async ({ client }, [id], opts) => {
    const input = {
      sandbox_id: id as string,
      ttl_seconds: opts.ttl as number,
      ...(opts.port === undefined ? {} : { port: opts.port as number }),
      ...attributionFrom(opts),
    } as CreatePreviewTokenInput
    const token = await (await client()).previewTokens.create(input)
    return {
      data: token,
      human: [`token    ${token.token}`, `url      ${token.url ?? '- (name a --port: the template has no default port)'}`, `id       ${token.id}`, `expires  ${token.expires_at}`].join('\n'),
    }
  })
}
