import type { Command } from 'commander'
import type { MiosaClient, Sandbox } from '../../../sdk/index.js'
import { command, run } from '../../command.js'
import { renderRecord } from '../../output.js'

// What the sandbox commands share: how a sandbox is shown, and the one-id lifecycle verbs.

export const SANDBOX_COLUMNS = ['id', 'name', 'template', 'state', 'workspace_id', 'expires_at', 'created_at'] as const

export function showSandbox(sandbox: Sandbox): string {
  return renderRecord(sandbox)
}

/** `miosa sandbox <verb> <sandbox-id>` answering the sandbox afterwards. */
export function sandboxVerb(
  parent: Command,
  verb: string,
  description: string,
  act: (client: MiosaClient, id: string) => Promise<Sandbox>,
): Command {
  return run(command(parent, `${verb} <sandbox-id>`, description), async ({ client }, [id]) => {
    const sandbox = await act(await client(), id as string)
    return { data: sandbox, human: `${sandbox.id} is ${sandbox.state}` }
  })
}

/** A number flag, refused with the flag's name when it is not one. */
export function numberFlag(flag: string): (value: string) => number {
  return (value) => {
    const n = Number(value)
    if (value.trim() === '' || !Number.isFinite(n)) throw new Error(`${flag} expects a number, got "${value}"`)
    return n
  }
}
