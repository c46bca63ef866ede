import type { Command } from 'commander'
import { Option } from 'commander'
import type { UpdateSandboxInput } from '../../../sdk/index.js'
import { attributionFrom, attributionOptions, command, run } from '../../command.js'
import { showSandbox } from './common.js'

export function registerUpdate(parent: Command): void {
  const cmd = attributionOptions(
    command(parent, 'update <sandbox-id>', 'rename a sandbox, change its idle timeout, or make its previews public or private')
      .addOption(
        new Option('--preview-public <true|false>', 'true: anyone may open its previews without a token; false: private (the default)').argParser(booleanFlag('--preview-public')),
      )
      .option('--name <name>', 'a new name')
      .option('--timeout <duration>', 'a new idle timeout: 10m, 1h, or seconds'),
  ).addHelpText(
    'after',
    `
Examples:
  miosa sandbox update <sandbox-id> --preview-public true --json
  miosa sandbox update <sandbox-id> --name renamed --timeout 2h`,
  )
  run(cmd, async ({ client }, [id], opts) => {
    const timeout = opts.timeout as string | undefined
    const input = {
      ...(opts.previewPublic === undefined ? {} : { preview_public: opts.previewPublic }),
      ...(opts.name === undefined ? {} : { name: opts.name }),
      ...(timeout === undefined ? {} : { timeout: /^\d+$/.test(timeout.trim()) ? Number(timeout) : timeout }),
      ...attributionFrom(opts),
    } as UpdateSandboxInput
    const sandbox = await (await client()).sandboxes.update(id as string, input)
    return { data: sandbox, human: showSandbox(sandbox) }
  })
}

function booleanFlag(flag: string): (value: string) => boolean {
  return (value) => {
    const v = value.trim().toLowerCase()
    if (v === 'true' || v === 'yes' || v === '1') return true
    if (v === 'false' || v === 'no' || v === '0') return false
    throw new Error(`${flag} expects true or false, got "${value}"`)
  }
}
