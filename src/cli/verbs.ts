import type { Command } from 'commander'
import type { MiosaClient } from '../sdk/index.js'
import { command, listOptions, listPages, run } from './command.js'
import { renderPage, renderRecord } from './output.js'
import type { Row } from './output.js'

// The verbs every resource has in the same shape; commands/<noun>/<verb>.ts wire them up.

type Page = { data: Row[]; next_cursor: string | null }

export function getVerb(parent: Command, noun: string, fetch: (client: MiosaClient, id: string) => Promise<object>): Command {
  return run(command(parent, 'get <id>', `show one ${noun}`), async ({ client }, [id]) => {
    const item = (await fetch(await client(), id as string)) as Row
    return { data: item, human: renderRecord(item) }
  })
}

export function listVerb(
  parent: Command,
  noun: string,
  columns: readonly string[],
  fetch: (client: MiosaClient, params: Record<string, unknown>) => Promise<object>,
  extra: { options?: (cmd: Command) => Command; filters?: (opts: Record<string, unknown>) => Record<string, unknown> } = {},
): Command {
  const cmd = (extra.options ?? ((c) => c))(listOptions(command(parent, 'list', `list ${noun}s, newest first`)))
  return run(cmd, async ({ client }, _args, opts) => {
    const c = await client()
    const filters = extra.filters?.(opts) ?? {}
    const page = await listPages(opts, (params) => fetch(c, { ...params, ...filters }) as Promise<Page>)
    return { data: page, human: renderPage(page, columns) }
  })
}

export function deleteVerb(parent: Command, noun: string, remove: (client: MiosaClient, id: string) => Promise<object>): Command {
  return run(command(parent, 'delete <id>', `delete a ${noun}`), async ({ client }, [id]) => {
    const result = await remove(await client(), id as string)
    return { data: result, human: `deleted ${noun} ${id}` }
  })
}
