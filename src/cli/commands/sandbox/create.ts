import type { Command } from 'commander'
import { resolveDeployment } from '../deployments/resolve.js'
import { Option } from 'commander'
import type { CreateSandboxInput, MiosaClient, Sandbox } from '../../../sdk/index.js'
import { attributionFrom, attributionOptions, collect, command, parsePairs, run } from '../../command.js'
import type { Progress } from '../../progress.js'
import { stepOf } from '../../progress.js'
import { numberFlag, showSandbox } from './common.js'

const DEFAULT_WAIT_MINUTES = 30

export function registerCreate(parent: Command): void {
  const cmd = attributionOptions(
    command(parent, 'create', 'create a sandbox (persistent unless --non-persistent); --wait until it is running')
      .option('--template <name>', 'template: miosa-sandbox, node, nextjs, python, static, … (default miosa-sandbox; `miosa templates list`)')
      .option('--name <name>', 'a name for it')
      .option('--snapshot <snapshot-id>', 'start from this snapshot instead of a template (a replacement sandbox)')
      .option('--workspace <workspace-id>', "the workspace it belongs to (default: the organization's first)")
      .option('--project <project-id>', 'the project it belongs to')
      .option('--timeout <duration>', 'idle time before it is stopped (or destroyed when non-persistent): 10m, 1h, or seconds (default 10m)')
      .option('--non-persistent', 'discard it when the timeout passes, instead of stopping it with its files kept')
      .option('--env <KEY=VALUE>', 'an environment variable for every command in it (repeatable)', collect)
      .option('--deployment <deployment>', "develop against this deployment (id or slug): its environment's env vars are injected")
      .option('--environment <name>', 'the deployment environment whose env vars it gets (default production; needs --deployment)')
      .addOption(new Option('--cpu <cores>', 'CPU cores (fractions allowed)').argParser(numberFlag('--cpu')))
      .addOption(new Option('--memory-mb <mb>', 'memory limit in MiB').argParser(numberFlag('--memory-mb')))
      .option('--no-internet', 'no connections beyond its workspace network (DNS still resolves), except to --allow-egress')
      .option('--allow-egress <cidr-or-host>', 'with --no-internet (implied): an IPv4 address, CIDR or host name it may still reach (repeatable)', collect)
      .option('--wait', 'wait until it is running, showing progress on stderr (the first use of a template builds its image)')
      .addOption(new Option('--wait-timeout <minutes>', `give up waiting after this long (default ${DEFAULT_WAIT_MINUTES})`).argParser(numberFlag('--wait-timeout'))),
  ).addHelpText(
    'after',
    `
Examples:
  miosa sandbox create --template nextjs --name my-agent-workspace --timeout 1h --wait --json
  miosa sandbox create --template node --name one-off-test --timeout 10m --non-persistent --json
  miosa sandbox create --snapshot <snapshot-id> --name restored --timeout 1h --wait --json
  miosa sandbox create --template node --deployment smile-dental --environment staging --wait --json
  miosa sandbox create --template python --no-internet --allow-egress 10.0.0.0/8 --allow-egress pypi.internal.example --wait --json`,
  )
  run(cmd, async ({ client, progress }, _args, opts) => {
    const input = {
      ...(opts.template === undefined ? {} : { template: opts.template }),
      ...(opts.name === undefined ? {} : { name: opts.name }),
      ...(opts.snapshot === undefined ? {} : { snapshot_id: opts.snapshot }),
      ...(opts.workspace === undefined ? {} : { workspace_id: opts.workspace }),
      ...(opts.project === undefined ? {} : { project_id: opts.project }),
      ...(opts.timeout === undefined ? {} : { timeout: timeoutValue(opts.timeout as string) }),
      ...(opts.nonPersistent === true ? { persistent: false } : {}),
      ...(opts.env === undefined ? {} : { env: parsePairs(opts.env as string[], '--env') }),
      ...(opts.cpu === undefined ? {} : { cpu: opts.cpu }),
      ...(opts.memoryMb === undefined ? {} : { memory_mb: opts.memoryMb }),
      ...(opts.internet === false ? { allow_internet: false } : {}),
      ...(opts.allowEgress === undefined ? {} : { egress: { allow: opts.allowEgress as string[] } }),
      ...attributionFrom(opts),
    } as CreateSandboxInput
    const c = await client()
    if (opts.deployment !== undefined) input.deployment_id = (await resolveDeployment(c, opts.deployment as string)).id
    if (opts.environment !== undefined) input.environment = opts.environment as string
    let sandbox = await c.sandboxes.create(input)
    if (opts.wait === true && sandbox.state !== 'running') {
      // Polls rather than holding one request open: an image build can take minutes.
      const display = progress()
      display.update(`${sandbox.id}: ${sandbox.state}…`, { sandbox_id: sandbox.id, state: sandbox.state })
      const show = templateBuildShower(c, display)
      try {
        sandbox = await c.sandboxes.waitUntil(sandbox.id, ['running'], {
          timeoutMs: ((opts.waitTimeout as number | undefined) ?? DEFAULT_WAIT_MINUTES) * 60_000,
          onPoll: show,
        })
      } finally {
        display.done()
      }
    }
    return { data: sandbox, human: showSandbox(sandbox) }
  })
}

/**
 * While the sandbox is `creating`, asks how far its template's image build is (the first
 * use of a template builds it) and shows it: which image, its Dockerfile step, the latest line.
 */
function templateBuildShower(c: MiosaClient, display: Progress): (s: Sandbox) => void {
  let asking = false
  return (s) => {
    if (s.state !== 'creating') {
      display.update(`${s.id}: ${s.state}…`, { sandbox_id: s.id, state: s.state })
      return
    }
    if (asking) return
    asking = true
    void c.templates
      .list()
      .then((templates) => {
        const build = templates.find((t) => t.name === s.template)?.building ?? null
        if (build === null) {
          display.update(`${s.id}: creating…`, { sandbox_id: s.id, state: s.state })
          return
        }
        const image = build.template === s.template ? '' : ` (first its parent ${build.template})`
        const step = stepOf(build)
        display.update(`${s.id}: creating: building template ${s.template}${image}${step === '' ? '' : `, ${step}`}: ${build.message}`, {
          sandbox_id: s.id,
          state: s.state,
          stage: 'building_template',
          template: s.template,
          template_build: build,
        })
      })
      .catch(() => { /* progress is best effort: the wait itself reports failures */ })
      .finally(() => (asking = false))
  }
}

/** A bare number is seconds; anything else ('1h') goes to the server as written. */
function timeoutValue(value: string): string | number {
  return /^\d+$/.test(value.trim()) ? Number(value) : value
}
