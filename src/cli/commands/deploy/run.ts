import { stat } from 'node:fs/promises'
import type { Command } from 'commander'
import { Option } from 'commander'
import { MiosaError } from '../../../core/errors.js'
import type { Deployment, MiosaClient, PlanResult, Version } from '../../../sdk/index.js'
import { command, run } from '../../command.js'
import { resolveProject } from '../environments/resolve.js'
import { localSourceTar } from './local-source.js'
import { renderRecord } from '../../output.js'

// `miosa deploy`: publish a sandbox's /workspace, or a local directory, to the deployment
// of that name (created on first publish), wait for the build while its output streams to
// stderr, and print the URL. --plan prints what the build would do instead.

interface DeployOptions {
  sandbox?: string
  name: string
  kind?: 'auto' | 'static' | 'dynamic'
  env?: string
  plan?: boolean
  installCommand?: string
  buildCommand?: string
  outputDir?: string
  spa?: boolean
  workspace?: string
  project?: string
}

export function registerDeploy(program: Command): void {
  const cmd = command(program, 'deploy [dir]', 'publish a sandbox (--sandbox) or a local directory as a new version of a deployment, wait for its build, print its URL')
    .option('--sandbox <sandbox-id>', "publish this sandbox's /workspace (frozen at publish time)")
    .requiredOption('--name <name>', 'the deployment (created on first publish); its slug is the first label of the URL')
    .addOption(new Option('--kind <kind>', 'static files, a server, or decided from the build output').choices(['auto', 'static', 'dynamic']).default('auto'))
    .option('--env <environment>', 'the environment to publish to (default production)')
    .option('--plan', 'print the detected build plan without building')
    .option('--install-command <command>', 'replaces the detected install step (run by sh -lc in /workspace)')
    .option('--build-command <command>', 'replaces the detected build step')
    .option('--output-dir <dir>', 'the directory the release is made of, relative to /workspace (e.g. dist)')
    .option('--spa', 'serve index.html for paths that match no file (single-page apps)')
    .option('--workspace <workspace-id>', "the deployment's workspace (default: the organization's first)")
    .option('--project <project>', "a new deployment's project (id or slug): environments other than production and staging are a project's (miosa environments)")
    .addHelpText(
      'after',
      `
Examples:
  miosa deploy --sandbox <sandbox-id> --name smile-dental
  miosa deploy ./dist --name smile-dental --kind static --json
  miosa deploy --sandbox <sandbox-id> --name smile-dental --plan
  miosa deploy --sandbox <sandbox-id> --name smile-dental --project shop --env preview/pr-42`,
    )
  run(cmd, async ({ client, json, stderr }, [dir], raw) => {
    const opts = raw as unknown as DeployOptions
    if ((dir === undefined) === (opts.sandbox === undefined)) throw new Error('name what to publish: --sandbox <sandbox-id> or a local directory (one of them)')
    const c = await client()
    const settings = {
      ...(opts.installCommand === undefined ? {} : { install_command: opts.installCommand }),
      ...(opts.buildCommand === undefined ? {} : { build_command: opts.buildCommand }),
      ...(opts.outputDir === undefined ? {} : { output_dir: opts.outputDir }),
      ...(opts.spa === true ? { spa_fallback: true } : {}),
    }
    const kind = opts.kind ?? 'auto'
    if (opts.plan === true && opts.sandbox !== undefined) {
      const result = await c.deployments.plan({ sandbox_id: opts.sandbox, kind, settings })
      return { data: result, human: showPlan(result) }
    }
    // The build's lines as they come on stderr: as they are, or one JSON event each with --json (stdout keeps the one document).
    const onLog = json ? (line: string) => void stderr.write(`${JSON.stringify({ type: 'log', line })}\n`) : (line: string) => void stderr.write(`${line}\n`)
    const environment = opts.env === undefined ? {} : { environment: opts.env }
    const project = opts.project === undefined ? {} : { project_id: (await resolveProject(c, opts.project)).id }
    let version: Version
    if (opts.sandbox !== undefined) {
      version = await c.deployments.publishByName(
        { name: opts.name, sandbox_id: opts.sandbox, kind, settings, ...environment, ...project, ...(opts.workspace === undefined ? {} : { workspace_id: opts.workspace }) },
        { wait: true, onLog },
      )
    } else {
      const info = await stat(dir as string).catch(() => undefined)
      if (info === undefined || !info.isDirectory()) throw new Error(`${dir} is not a local directory`)
      const deployment = await deploymentNamed(c, opts.name, opts.workspace, opts.spa === true, project.project_id)
      const body = await localSourceTar(dir as string)
      if (opts.plan === true) {
        const result = await c.deployments.planUpload(deployment.id, body, { kind, gzip: true, ...settings })
        return { data: result, human: showPlan(result) }
      }
      version = await c.deployments.publishUpload(
        deployment.id,
        body,
        { kind, gzip: true, ...settings, ...environment },
        { wait: true, onLog },
      )
    }
    if (version.status === 'failed') return { data: version, human: showFailure(version), exitCode: 1 }
    return { data: version, human: `version ${version.version_number} is ${version.status}: ${version.url}` }
  })
}

/** The deployment of that name (by slug, then by name), created when there is none. */
async function deploymentNamed(c: MiosaClient, name: string, workspaceId: string | undefined, spa: boolean, projectId?: string): Promise<Deployment> {
  const scope = workspaceId === undefined ? {} : { workspace_id: workspaceId }
  for (const filter of [{ slug: name }, { name }]) {
    const { data } = await c.deployments.list({ ...scope, ...filter, limit: 2 })
    if (data.length === 1) return data[0] as Deployment
    if (data.length > 1) throw new MiosaError('invalid', `several deployments are named ${name}: name the workspace with --workspace`)
  }
  return c.deployments.create({ name, ...scope, ...(projectId === undefined ? {} : { project_id: projectId }), ...(spa ? { spa_fallback: true } : {}) })
}

/** The error, the last lines of the output that explain it, and where the whole log is. */
export function showFailure(version: Version): string {
  const details = version.error_details
  const lines = [`version ${version.version_number} failed: ${version.error ?? 'unknown error'}`]
  if (details !== null && details.output.length > 0) {
    const whose = details.source === 'app' ? `the app printed${details.port === null ? '' : ` (expected on port ${details.port})`}` : 'the build printed'
    lines.push('', `last ${details.output.length} line${details.output.length === 1 ? '' : 's'} ${whose}:`, ...details.output.map((l) => `  ${l}`))
  }
  lines.push('', `the whole log: ${details?.logs_command ?? `miosa logs ${version.id}`}`)
  return lines.join('\n')
}

function showPlan(result: PlanResult): string {
  const { plan, source } = result
  const argv = (a: string[] | null) => (a === null ? '-' : a.join(' '))
  return [
    renderRecord({
      kind: plan.kind,
      detected: plan.detected,
      install: argv(plan.install),
      build: argv(plan.build),
      output_dir: plan.output_dir,
      start: argv(plan.start),
      release: argv(plan.release ?? null),
      spa_fallback: plan.spa_fallback,
      source: `${source.sha256} (${source.files} files, ${source.size_bytes} bytes)`,
    }),
    '',
    ...plan.reasons.map((r) => `- ${r}`),
  ].join('\n')
}
