import type { Command } from 'commander'
import { Option } from 'commander'
import type { CreateShareTokenInput } from '../../../sdk/index.js'
import { attributionFrom, attributionOptions, command, durationFlag, portFlag, run } from '../../command.js'

export function registerCreate(parent: Command): void {
  const cmd = attributionOptions(
    command(parent, 'create <sandbox-id>', 'create a share link to a sandbox preview; its token and URL are shown once')
      .addOption(new Option('--port <port>', 'the one port it opens (default: any port; the URL uses the default port)').argParser(portFlag()))
      .option('--password <password>', 'visitors must enter it (8 to 256 characters)')
      .option('--expires-at <time>', 'when it stops working: an ISO 8601 time, or a duration from now (12h, 7d); default: until revoked')
      .option('--name <name>', 'a name to recognise it by'),
  ).addHelpText(
    'after',
    `
Examples:
  miosa share create <sandbox-id> --name "Client review" --expires-at 7d --json
  miosa share create <sandbox-id> --port 3000 --password "correct horse battery"`,
  )
  run(cmd, async ({ client }, [id], opts) => {
    const input = {
      sandbox_id: id as string,
      ...(opts.port === undefined ? {} : { port: opts.port as number }),
      ...(opts.password === undefined ? {} : { password: opts.password }),
      ...(opts.expiresAt === undefined ? {} : { expires_at: expiresAt(opts.expiresAt as string) }),
      ...(opts.name === undefined ? {} : { name: opts.name }),
      ...attributionFrom(opts),
    } as CreateShareTokenInput
    const share = await (await client()).shareTokens.create(input)
    return {
      data: share,
      human: [
        `url      ${share.url ?? '- (name a --port: the template has no default port)'}`,
        `token    ${share.token}`,
        `id       ${share.id}`,
        `password ${share.has_password ? 'yes' : 'no'}`,
        `expires  ${share.expires_at ?? 'never (until revoked)'}`,
      ].join('\n'),
    }
  })
}

/** A duration from now (7d, 12h) becomes a time; anything else goes to the server as written. */
function expiresAt(value: string): string {
  if (!/^\s*\d+(?:\.\d+)?\s*[smhd]?\s*$/i.test(value)) return value
  return new Date(Date.now() + durationFlag('--expires-at')(value) * 1000).toISOString()
}
