import { BASE_IMAGE } from '../runtime/image-store.js'
import type { BuildPlan } from './builder.js'
import { APP_DIR, CA_FILE, IMAGE_PORT } from './dockerfiles.js'

// The Dockerfiles of Go and Ruby releases (Node and Python: dockerfiles.ts). The build
// context is the same: the source under app/, the platform's CA bundle at the root.
//
// Go compiles in a stage FROM the go template (CGO_ENABLED=0, so the binary needs no C
// library), and the release is the binary alone, with Debian's CA bundle for outbound
// HTTPS, on the Debian base every template descends from: none of the toolchain ships, and
// the base's layers are already on any host that runs templates.
// Ruby runs FROM the ruby template, its gems installed by bundler (from vendor/cache, the
// Debian packages the template has, or rubygems.org).
//
// Build-time values are not declared as ARGs here: they reach the install and build steps
// the way the release pipeline passes them (never as build arguments, which would stay in
// the image's history).

/** The apps this module writes the Dockerfile of. */
export const COMPILED = new Set<BuildPlan['detected']>(['go', 'ruby'])

const CA_PATH = '/etc/miosa/ca-certificates.crt'
/** Where the go stage leaves the binary; also where it is in the release (plan.start says `./app`). */
const GO_BINARY = 'app'

export interface CompiledDockerfileSpec {
  plan: BuildPlan
  /** The template image the app builds FROM (go or ruby). */
  image: string
  /** The template's unprivileged user, or root. */
  user: string
  /** The source's files (relative paths), to know which manifests exist. */
  files: readonly string[]
}

/** Runs a step's argv (as "$@") trusting the platform's CA bundle (Go's and Ruby's HTTPS read SSL_CERT_FILE). */
const STEP_PRELUDE = ['set -e', `if [ -s ${CA_PATH} ]; then export SSL_CERT_FILE=${CA_PATH}; fi`, '"$@"'].join('; ')

export function compiledDockerfile(spec: CompiledDockerfileSpec): string {
  const { plan } = spec
  if (plan.start === null) throw new Error('a dynamic plan without a start command has no generated Dockerfile')
  if (plan.detected === 'go') return goDockerfile(spec, plan.start)
  if (plan.detected === 'ruby') return rubyDockerfile(spec, plan.start)
  throw new Error(`no compiled Dockerfile for a ${plan.detected} app`)
}

function goDockerfile(spec: CompiledDockerfileSpec, start: string[]): string {
  const { plan, files } = spec
  const chown = chownFor(spec.user)
  const lines = [...header(spec, ' AS build'), 'ENV CGO_ENABLED=0 GOFLAGS=-trimpath']
  // Modules download in a layer of their own, reused while go.mod and go.sum stay the same.
  if (files.includes('go.sum') && !files.includes('vendor/modules.txt')) {
    lines.push(`COPY ${chown}${json([`${APP_DIR}/go.mod`, `${APP_DIR}/go.sum`, './'])}`, run(['go', 'mod', 'download']))
  }
  lines.push(`COPY ${chown}${json([`${APP_DIR}/`, './'])}`)
  if (plan.install !== null) lines.push(run(plan.install))
  if (plan.build !== null) lines.push(run(plan.build))
  lines.push(
    `RUN ${json(['sh', '-c', `test -x ${GO_BINARY} || { echo "the build left no executable ./${GO_BINARY} in the workspace: the release is that binary (go build -o ${GO_BINARY} <package>)" >&2; exit 1; }`])}`,
    '',
    '# The release: the binary and a CA bundle, no toolchain.',
    `FROM ${BASE_IMAGE}`,
    'COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt',
    // The template's unprivileged user, so the app runs as it did in the sandbox.
    ...(spec.user === 'root' ? [] : [`RUN ${json(['useradd', '--uid', '1000', '--home-dir', '/workspace', '--no-create-home', '--shell', '/bin/sh', spec.user])}`]),
    `COPY --from=build ${chown}${json([`/workspace/${GO_BINARY}`, `/workspace/${GO_BINARY}`])}`,
    ...(spec.user === 'root' ? [] : [`USER ${spec.user}`]),
    'WORKDIR /workspace',
    `ENV PORT=${IMAGE_PORT}`,
    `EXPOSE ${IMAGE_PORT}`,
    `CMD ${json(start)}`,
    '',
  )
  return lines.join('\n')
}

function rubyDockerfile(spec: CompiledDockerfileSpec, start: string[]): string {
  const { plan, files } = spec
  const chown = chownFor(spec.user)
  const lines = header(spec, '')
  // The bundle installs in a layer of its own, reused while the Gemfile, its lock and vendor/cache stay the same.
  const bundler = plan.install !== null && plan.install[0] === 'bundle'
  if (bundler) {
    lines.push(`COPY ${chown}${json([...['Gemfile', 'Gemfile.lock'].filter((f) => files.includes(f)).map((f) => `${APP_DIR}/${f}`), './'])}`)
    if (files.some((f) => f.startsWith('vendor/cache/'))) lines.push(`COPY ${chown}${json([`${APP_DIR}/vendor/cache/`, './vendor/cache/'])}`)
    lines.push(run(plan.install ?? []))
  }
  lines.push(`COPY ${chown}${json([`${APP_DIR}/`, './'])}`)
  if (plan.install !== null && !bundler) lines.push(run(plan.install))
  if (plan.build !== null) lines.push(run(plan.build))
  lines.push(`ENV PORT=${IMAGE_PORT} RACK_ENV=production RAILS_ENV=production RAILS_LOG_TO_STDOUT=1 RAILS_SERVE_STATIC_FILES=1`, `EXPOSE ${IMAGE_PORT}`, `CMD ${json(start)}`, '')
  return lines.join('\n')
}

/** FROM the template, the CA bundle in place, then the template's user in /workspace. */
function header(spec: CompiledDockerfileSpec, stage: string): string[] {
  const lines = [`# Generated by miosa for a ${spec.plan.detected} app (${(spec.plan.reasons[0] ?? '').replace(/[\r\n]+/g, ' ')})`, `FROM ${spec.image}${stage}`, 'USER root', `COPY ${CA_FILE} ${CA_PATH}`]
  if (spec.user !== 'root') lines.push(`USER ${spec.user}`)
  lines.push('WORKDIR /workspace')
  return lines
}

function chownFor(user: string): string {
  return user === 'root' ? '' : `--chown=${user}:${user} `
}

function run(argv: readonly string[]): string {
  return `RUN ${json(['sh', '-c', STEP_PRELUDE, 'sh', ...argv])}`
}

/** A JSON array: the exec form of RUN, COPY and CMD, where nothing is interpreted by a shell. */
function json(values: readonly string[]): string {
  return JSON.stringify(values)
}
