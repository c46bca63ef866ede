import type { Command } from 'commander'
import type { EnvPhaseInput, EnvVar } from '../../../sdk/index.js'
import { command, run } from '../../command.js'
import type { ActionContext } from '../../command.js'
import { renderTable } from '../../output.js'
import { resolveDeployment } from '../deployments/resolve.js'

// `miosa env set|list|unset`: env vars and secrets of a deployment environment. A value can
// come from stdin (`miosa env set app TOKEN --secret < token.txt`) so it stays out of shell
// history. Nothing here prints a secret: lists show previews (`abcd…`, `••••`).

const COLUMNS = ['key', 'environment', 'phase', 'is_secret', 'baked', 'preview'] as const

export function registerEnv(program: Command): void {
  const noun = program.command('env').description('env vars and secrets of a deployment environment (encrypted at rest; applied on the next boot)')

  const set = command(noun, 'set <deployment> <pairs...>', 'set KEY=value pairs (all or none); a KEY without =value reads its value from stdin')
    .option('--env <environment>', 'the environment (default production)')
    .option('--secret', 'mark them secrets: previews show •••• and the value is never returned, only injected')
    .option('--build', 'needed at build time only (default for NEXT_PUBLIC_* and VITE_*: baked into the build)')
    .option('--runtime', 'needed by running instances and sandboxes only (the default)')
    .option('--both', 'needed at build time and at runtime')
    .addHelpText(
      'after',
      '\nExamples:\n  miosa env set smile-dental API_URL=https://api.example.com LOG_LEVEL=info --env staging\n  miosa env set smile-dental STRIPE_KEY --secret < stripe-key.txt    (the value from stdin: not in shell history)',
    )
  run(set, async (ctx, [ref, ...rest], opts) => {
    const pairs = (rest.flat() as string[]).filter((p) => p !== undefined)
    const phase = phaseOf(opts)
    const vars = await parsePairs(pairs, ctx)
    const c = await ctx.client()
    const deployment = await resolveDeployment(c, ref as string)
    const environment = opts.env as string | undefined
    const items = vars.map((v) => ({ key: v.key, value: v.value, is_secret: opts.secret === true, ...(phase === undefined ? {} : { phase }) }))
    const result =
      items.length === 1
        ? await c.env.set(deployment.id, { ...(items[0] as (typeof items)[number]), ...(environment === undefined ? {} : { environment }) })
        : await c.env.setMany(deployment.id, { vars: items, ...(environment === undefined ? {} : { environment }) })
    const baked = result.data.filter((v) => v.baked).map((v) => v.key)
    const lines = [
      renderTable(result.data, COLUMNS),
      '',
      `${result.data.length} var(s) set in ${result.environment} of ${deployment.slug}; they take effect on the next boot: ${result.restart_command}`,
    ]
    if (baked.length > 0) lines.push(`baked into the build (${baked.join(', ')}): changing them needs a new publish`)
    return { data: result, human: lines.join('\n') }
  })

  const list = command(noun, 'list <deployment>', 'list env vars with previews (abcd…, •••• for secrets); --reveal shows the values of vars that are not secrets')
    .option('--env <environment>', 'one environment (default: every environment)')
    .option('--reveal', 'also the raw values of vars that are not secrets (organization keys only)')
    .addHelpText('after', '\nExample:\n  miosa env list smile-dental --env staging --json')
  run(list, async ({ client }, [ref], opts) => {
    const c = await client()
    const deployment = await resolveDeployment(c, ref as string)
    const result = await c.env.list(deployment.id, {
      ...(opts.env === undefined ? {} : { environment: opts.env as string }),
      ...(opts.reveal === true ? { reveal: true } : {}),
    })
    const columns = opts.reveal === true ? [...COLUMNS, 'value'] : COLUMNS
    return { data: result, human: renderTable(result.data as EnvVar[], columns) }
  })

  const unset = command(noun, 'unset <deployment> <key>', 'remove an env var from an environment (applied on the next boot)')
    .option('--env <environment>', 'the environment (default production)')
    .addHelpText('after', '\nExample:\n  miosa env unset smile-dental LOG_LEVEL --env staging')
  run(unset, async ({ client }, [ref, key], opts) => {
    const c = await client()
    const deployment = await resolveDeployment(c, ref as string)
    const result = await c.env.unset(deployment.id, key as string, opts.env === undefined ? {} : { environment: opts.env as string })
    return { data: result, human: `${result.key} removed from ${result.environment} of ${deployment.slug}; it takes effect on the next boot: ${result.restart_command}` }
  })
}

function phaseOf(opts: Record<string, unknown>): EnvPhaseInput | undefined {
  const given = (['build', 'runtime', 'both'] as const).filter((p) => opts[p] === true)
  if (given.length > 1) throw new Error(`give one of --build, --runtime and --both, not ${given.map((p) => `--${p}`).join(' and ')}`)
  return given[0]
}

/** KEY=value pairs; one bare KEY takes stdin (a single trailing newline dropped). Values are never echoed in errors. */
async function parsePairs(pairs: readonly string[], ctx: ActionContext): Promise<{ key: string; value: string }[]> {
  const bare = pairs.filter((p) => !p.includes('='))
  if (bare.length > 1) throw new Error(`only one KEY can take its value from stdin; give the others as KEY=value (${bare.join(', ')})`)
  const out: { key: string; value: string }[] = []
  for (const pair of pairs) {
    const at = pair.indexOf('=')
    if (at === 0) throw new Error('expected KEY=value, got a pair with no key')
    if (at > 0) {
      out.push({ key: pair.slice(0, at), value: pair.slice(at + 1) })
      continue
    }
    if (ctx.stdin.isTTY === true) throw new Error(`${pair} has no =value: pipe its value on stdin (miosa env set <deployment> ${pair} < file)`)
    out.push({ key: pair, value: (await readAll(ctx.stdin)).replace(/\r?\n$/, '') })
  }
  return out
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer))
  return Buffer.concat(chunks).toString('utf8')
}
