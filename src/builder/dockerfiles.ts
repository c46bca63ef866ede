import type { BuildPlan } from './builder.js'

// The Dockerfiles a dynamic release of a Node or Python app is built from. Two stages: the
// build stage FROM the app's sandbox template (compilers, git, dev dependencies) runs the
// install and build; the release stage FROM a slim runtime image (miosa/template-runtime-*)
// copies what the app needs to run, and nothing of the toolchain. The build context holds
// the Dockerfile at its root next to the CA bundle (ca-certificates.crt) and the venv's
// profile script, and the source under app/. Build-stage layers go from what changes least
// to what changes most: the dependency manifests, the install, then the rest of the source
// and the build; a rebuild whose manifests did not change reuses the install. Steps are
// exec-form argv (never a command line assembled from the source).
//
// No build-time value ever appears here: a build that has some runs its steps in a builder
// container with them (image-build-env.ts) and the release stage alone (releaseDockerfile)
// assembles the image from that container's result, with COPY only.

/** The port instances listen on (INSTANCE_PORT in src/runtime/instance-driver.ts). */
export const IMAGE_PORT = 8080
/** Where the context holds the source (or, for releaseDockerfile, the built workspace). */
export const APP_DIR = 'app'
export const CA_FILE = 'ca-certificates.crt'
/** The profile script putting the venv first on PATH for login shells (`sh -lc` start commands). */
export const VENV_PROFILE_FILE = 'miosa-venv.sh'
const CA_PATH = '/etc/miosa/ca-certificates.crt'
export const WORKSPACE = '/workspace'
/** Inside the workspace, so the release stage copies it with the app; out of the way of a user's own .venv. */
export const VENV = `${WORKSPACE}/.miosa/venv`
/** uid:gid of the runtime images' user miosa (the templates' too). */
const MIOSA_IDS = '1000:1000'
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

export interface DockerfileSpec {
  plan: BuildPlan
  /** The template image the build stage is FROM. */
  image: string
  /** The slim runtime image the release stage is FROM. */
  runtime: string
  /** The template's unprivileged user, or root. */
  user: string
  /** The source's files (relative paths), to know which manifests exist. */
  files: readonly string[]
}

/** A directory of the built workspace the release takes (relative to /workspace), and where it goes. */
export interface ReleaseCopy {
  from: string
  to: string
}

/**
 * Runs a step's argv (as "$@") trusting the platform's CA bundle, with quiet npm and pip,
 * and removes npm's download cache afterwards (it would only bloat the layer).
 */
const STEP_PRELUDE = [
  'set -e',
  `if [ -s ${CA_PATH} ]; then export NODE_EXTRA_CA_CERTS=${CA_PATH} PIP_CERT=${CA_PATH} REQUESTS_CA_BUNDLE=${CA_PATH}; fi`,
  'export npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false npm_config_progress=false npm_config_cache=/tmp/miosa-npm-cache NO_UPDATE_NOTIFIER=1 FORCE_COLOR=0 NEXT_TELEMETRY_DISABLED=1',
  `export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_NO_INPUT=1 VIRTUAL_ENV=${VENV} PATH=${VENV}/bin:$PATH`,
  '"$@"',
  'rm -rf /tmp/miosa-npm-cache',
].join('; ')

/**
 * gunicorn and uvicorn that Debian provides (seen through --system-site-packages) have no
 * script in the venv, and Debian's own scripts run the system Python, blind to the venv:
 * each gets a venv script running it as a module, unless pip installed one.
 */
const VENV_SHIMS = `for tool in gunicorn uvicorn; do if [ ! -e ${VENV}/bin/$tool ]; then printf '#!/bin/sh\\nexec ${VENV}/bin/python -m %s "$@"\\n' $tool >${VENV}/bin/$tool && chmod +x ${VENV}/bin/$tool; fi; done`

/** The profile script's text (VENV_PROFILE_FILE in the context). */
export const VENV_PROFILE = `if [ -d ${VENV}/bin ]; then export VIRTUAL_ENV=${VENV} PATH=${VENV}/bin:$PATH; fi\n`

/** A step as the argv that runs it with the prelude (in a RUN line, or exec'd in a builder container). */
export function preludeStep(argv: readonly string[]): string[] {
  return ['sh', '-c', STEP_PRELUDE, 'sh', ...argv]
}

/** Steps before the install: the Python venv (Debian's packages seen through --system-site-packages). */
export function setupSteps(plan: BuildPlan, o: { copies?: boolean } = {}): string[][] {
  if (plan.detected !== 'python') return []
  return [['python3', '-m', 'venv', '--system-site-packages', ...(o.copies === true ? ['--copies'] : []), VENV]]
}

/** Steps after the build: the venv's tool scripts, or dropping dev dependencies npm installed. */
export function finishSteps(plan: BuildPlan, standalone: boolean): string[][] {
  if (plan.detected === 'python') return [['sh', '-c', VENV_SHIMS]]
  // A standalone Next.js server carries the modules it needs: the release takes none of node_modules.
  if (usesNpm(plan) && !standalone) return [['npm', 'prune', '--omit=dev']]
  return []
}

/** The start command of a standalone Next.js server (detect.ts); its server.js changes to its own directory. */
export const NEXT_STANDALONE_START = ['node', '.next/standalone/server.js'] as const

/** What the release takes from the built workspace: all of it, or a standalone Next.js server with the assets it serves. */
export function releaseCopies(standalone: boolean, hasPublic: boolean): ReleaseCopy[] {
  if (!standalone) return [{ from: '.', to: '.' }]
  return [
    { from: '.next/standalone', to: '.next/standalone' },
    { from: '.next/static', to: '.next/standalone/.next/static' },
    ...(hasPublic ? [{ from: 'public', to: '.next/standalone/public' }] : []),
  ]
}

export function isStandalone(plan: BuildPlan): boolean {
  return plan.detected === 'node' && isStep(plan.start, NEXT_STANDALONE_START)
}

/** The two-stage Dockerfile for a node or python plan whose build needs no build-time values. */
export function generatedDockerfile(spec: DockerfileSpec): string {
  const { plan } = spec
  if (plan.start === null) throw new Error('a dynamic plan without a start command has no generated Dockerfile')
  const standalone = isStandalone(plan)
  const chown = spec.user === 'root' ? '' : `--chown=${spec.user}:${spec.user} `
  const lines = [header(plan), `FROM ${spec.image} AS build`, 'USER root', `COPY ${CA_FILE} ${CA_PATH}`]
  if (spec.user !== 'root') lines.push(`USER ${spec.user}`)
  lines.push(`WORKDIR ${WORKSPACE}`, ...setupSteps(plan).map(run))
  let manifests: string[] = []
  if (plan.detected === 'python') {
    if (isStep(plan.install, ['pip', 'install', '-r', 'requirements.txt'])) manifests = ['requirements.txt']
  } else if (usesNpm(plan)) {
    manifests = ['package.json', 'package-lock.json', 'npm-shrinkwrap.json', '.npmrc'].filter((f) => spec.files.includes(f))
  }
  // A custom install command may need any file: then everything is copied first.
  if (plan.install !== null && manifests.length > 0) {
    lines.push(`COPY ${chown}${json([...manifests.map((f) => `${APP_DIR}/${f}`), './'])}`, run(plan.install))
  }
  lines.push(`COPY ${chown}${json([`${APP_DIR}/`, './'])}`)
  if (plan.install !== null && manifests.length === 0) lines.push(run(plan.install))
  if (plan.build !== null) lines.push(run(plan.build))
  lines.push(...finishSteps(plan, standalone).map(run))
  const copies = releaseCopies(standalone, spec.files.some((f) => f.startsWith('public/')))
  lines.push('', ...releaseStage(spec, copies.map((c) => `COPY --from=build ${releaseChown(spec.user)}${json([posixJoin(WORKSPACE, c.from), `${posixJoin(WORKSPACE, c.to)}/`])}`)))
  return lines.join('\n')
}

/** The release stage alone: the context's app/ is the workspace a builder container built (already cut to releaseCopies). */
export function releaseDockerfile(spec: DockerfileSpec): string {
  if (spec.plan.start === null) throw new Error('a dynamic plan without a start command has no generated Dockerfile')
  return [header(spec.plan), ...releaseStage(spec, [`COPY ${releaseChown(spec.user)}${json([`${APP_DIR}/`, `${WORKSPACE}/`])}`])].join('\n')
}

function releaseStage(spec: DockerfileSpec, copies: string[]): string[] {
  const { plan } = spec
  const python = plan.detected === 'python'
  const lines = [`FROM ${spec.runtime}`, ...copies]
  if (python) lines.push(`COPY ${VENV_PROFILE_FILE} /etc/profile.d/${VENV_PROFILE_FILE}`)
  if (spec.user !== 'root') lines.push(`USER ${spec.user}`)
  lines.push(`WORKDIR ${WORKSPACE}`)
  const env = [`PORT=${IMAGE_PORT}`]
  if (python) env.push(`VIRTUAL_ENV=${VENV}`, `PATH=${VENV}/bin:${SYSTEM_PATH}`, 'PYTHONUNBUFFERED=1')
  else env.push('NODE_ENV=production', 'NEXT_TELEMETRY_DISABLED=1')
  // Docker sets HOSTNAME to the container's id, where a standalone Next.js server would listen.
  if (isStandalone(plan)) env.push('HOSTNAME=0.0.0.0')
  lines.push(`ENV ${env.join(' ')}`, `EXPOSE ${IMAGE_PORT}`, `CMD ${json(plan.start ?? [])}`, '')
  return lines
}

/** The `miosa/template-<name>` images a user's Dockerfile builds FROM. */
export function templatesNamed(dockerfile: string): string[] {
  const names = new Set<string>()
  for (const match of dockerfile.matchAll(/^\s*FROM\s+(?:--\S+\s+)*miosa\/template-([a-z0-9-]+)(?::latest)?(?:\s|$)/gim)) {
    if (match[1] !== undefined) names.add(match[1].toLowerCase())
  }
  return [...names]
}

function header(plan: BuildPlan): string {
  return `# Generated by miosa for a ${plan.detected} app (${(plan.reasons[0] ?? '').replace(/[\r\n]+/g, ' ')})`
}

function releaseChown(user: string): string {
  return user === 'root' ? '' : `--chown=${MIOSA_IDS} `
}

function usesNpm(plan: BuildPlan): boolean {
  return isStep(plan.install, ['npm', 'ci']) || isStep(plan.install, ['npm', 'install'])
}

function run(argv: readonly string[]): string {
  return `RUN ${json(preludeStep(argv))}`
}

function posixJoin(dir: string, path: string): string {
  return path === '.' ? dir : `${dir}/${path}`
}

function isStep(step: readonly string[] | null, argv: readonly string[]): boolean {
  return step !== null && step.length === argv.length && step.every((a, i) => a === argv[i])
}

/** A JSON array: the exec form of RUN, COPY and CMD, where nothing is interpreted by a shell. */
function json(values: readonly string[]): string {
  return JSON.stringify(values)
}
