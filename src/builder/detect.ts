import { posix } from 'node:path'
import { MiosaError } from '../core/errors.js'
import type { BuildPlan, BuildSettings, PublishKind } from './builder.js'
import { PYTHON_MODULES, otherLanguage, procfileLanguage } from './detect-languages.js'

// The build plan from a source's files: pure, so every layout is a unit test. What the
// source is (static files, a Node app, a Dockerfile, Python, Ruby, Go) decides the steps;
// the framework decides where a static build lands; a Procfile or a server decides that
// the release is a server to run. Every decision leaves a line in `reasons`.

/** Root files that may be a Node server's entry when package.json names none. */
const NODE_ENTRIES = ['server.js', 'index.js', 'app.js', 'server.mjs', 'index.mjs', 'app.mjs'] as const

/** The files detection reads the contents of (when present). */
export const DETECT_READS = [
  'package.json',
  'Procfile',
  'next.config.js',
  'next.config.mjs',
  'next.config.cjs',
  'next.config.ts',
  // Sniffed for a server when there is no start script or Procfile.
  ...NODE_ENTRIES,
  'requirements.txt',
  'pyproject.toml',
  ...PYTHON_MODULES,
  // Whether a Rack server is in the bundle.
  'Gemfile',
] as const

export interface SourceFacts {
  /** Paths of the source's files (not directories), relative, `/`-separated. */
  files: readonly string[]
  /** The text of one of DETECT_READS, or undefined when the source has no such file. */
  read(path: string): string | undefined
}

/** Where a build's static output goes when no framework says: the first of these that exists. */
export const OUTPUT_CANDIDATES = ['dist', 'build', 'out'] as const

/** What the source offers before `kind` and settings choose. */
export interface Draft {
  detected: BuildPlan['detected']
  install: string[] | null
  build: string[] | null
  /** Where the static files are (after the build), or null when the source makes none. */
  staticOutput: string | null
  /** Set when staticOutput is a guess among OUTPUT_CANDIDATES. */
  candidates?: string[]
  /** The server's start command, when there is one. */
  start: string[] | null
  /** There is a server entrypoint: kind auto makes the release dynamic. */
  server: boolean
  /** A single-page app (Vite, Create React App): a static release serves index.html for unknown paths unless the settings say otherwise. */
  spa?: boolean
  reasons: string[]
}

interface PackageJson {
  scripts?: Record<string, unknown>
  dependencies?: Record<string, unknown>
  devDependencies?: Record<string, unknown>
  main?: unknown
}

/** Source that starts a server by itself: node:http, or a framework's listen. */
const LISTENS = /\bcreateServer\s*\(|\.listen\s*\(/

const SERVER_PACKAGES = ['express', 'fastify', 'koa', '@hapi/hapi', 'hono', '@nestjs/core', '@adonisjs/core', 'restify', 'polka']

export function detectPlan(source: SourceFacts, kind: PublishKind, settings: BuildSettings): BuildPlan {
  const files = new Set(source.files)
  const draft = draftPlan(source, files, kind)
  const reasons = draft.reasons
  const release = procfileProcess(source.read('Procfile'), 'release')
  if (release !== null) reasons.push(`Procfile: release command \`${release.at(-1) ?? ''}\` runs once before a version goes live`)

  let install = draft.install
  let build = draft.build
  if (settings.install_command !== undefined) {
    install = command(settings.install_command)
    reasons.push(install === null ? 'install: skipped (empty install command given)' : `install: \`${settings.install_command}\` (given)`)
  }
  if (settings.build_command !== undefined) {
    build = command(settings.build_command)
    reasons.push(build === null ? 'build: skipped (empty build command given)' : `build: \`${settings.build_command}\` (given)`)
  }
  const givenOutput = settings.output_dir === undefined ? undefined : outputDir(settings.output_dir)

  let planKind: BuildPlan['kind']
  if (kind === 'static') {
    if (givenOutput === undefined && draft.staticOutput === null) {
      throw new MiosaError('invalid', `kind static: ${describe(draft.detected)} makes no static output; set output_dir to the directory its build writes, or publish with kind dynamic`, {
        details: { field: 'kind', detected: draft.detected },
      })
    }
    planKind = 'static'
    reasons.push('kind: static (given)')
  } else if (kind === 'dynamic') {
    if (draft.start === null && draft.detected !== 'dockerfile') {
      throw new MiosaError('invalid', `kind dynamic: ${describe(draft.detected)} has no server to run (no Procfile, start script or Dockerfile); add one, or publish with kind static`, {
        details: { field: 'kind', detected: draft.detected },
      })
    }
    planKind = 'dynamic'
    reasons.push('kind: dynamic (given)')
  } else if (draft.server) {
    planKind = 'dynamic'
    reasons.push('kind: dynamic (a server entrypoint)')
  } else if (draft.staticOutput !== null) {
    planKind = 'static'
    reasons.push('kind: static (a static output and no server entrypoint)')
  } else if (draft.start !== null) {
    planKind = 'dynamic'
    reasons.push('kind: dynamic (no static output, a start command)')
  } else {
    throw new MiosaError('invalid', `nothing to publish: ${describe(draft.detected)} has no index.html, no static build output and no server to run`, {
      details: { detected: draft.detected },
    })
  }

  let output: string
  let candidates: string[] | undefined
  if (givenOutput !== undefined) {
    output = givenOutput
    reasons.push(`output: ${output} (given)`)
  } else if (planKind === 'static') {
    output = draft.staticOutput ?? '.'
    candidates = draft.candidates
  } else {
    output = '.'
    reasons.push('output: the whole workspace after the build (a server release)')
  }

  return {
    kind: planKind,
    detected: draft.detected,
    install,
    build,
    output_dir: output,
    ...(candidates === undefined ? {} : { output_candidates: candidates }),
    start: draft.start,
    release,
    spa_fallback: spaFallback(settings, planKind === 'static' && draft.spa === true, reasons),
    reasons,
  }
}

function draftPlan(source: SourceFacts, files: ReadonlySet<string>, kind: PublishKind): Draft {
  const procfile = procfileStart(source.read('Procfile'))
  const reasons: string[] = []
  if (procfile !== null) reasons.push(`Procfile: web process \`${procfile.at(-1) ?? ''}\``)

  if (files.has('Dockerfile')) {
    if (kind !== 'static') {
      reasons.unshift('Dockerfile found: the image is built from it')
      return { detected: 'dockerfile', install: null, build: null, staticOutput: null, start: procfile, server: true, reasons }
    }
    reasons.push('kind static: the Dockerfile is not used')
  }
  if (files.has('package.json')) return nodeDraft(source, files, procfile, reasons)
  // A Procfile runs whatever it names: with no manifest, its command (or the files) says which runtime.
  const other = otherLanguage(source, files, procfile, [...reasons]) ?? (procfile === null ? undefined : procfileLanguage(files, procfile, [...reasons]))
  if (other !== undefined) {
    // Asked for static, a site with an index.html is served as files; without one there is nothing static.
    if (kind !== 'static' || !(files.has('index.html') || files.has('public/index.html'))) return other
    reasons.push(`kind static: the ${other.detected} app files are served as they are`)
  } else if (procfile !== null && kind !== 'static') {
    reasons.push('Procfile: its command and files name no runtime detected here: it runs as it is, in the miosa-sandbox template (Debian with its shell tools)')
  }
  return staticDraft(files, procfile, reasons)
}

function staticDraft(files: ReadonlySet<string>, procfile: string[] | null, reasons: string[]): Draft {
  let output = '.'
  if (files.has('index.html')) reasons.unshift('static files: index.html at the root, no package.json, Dockerfile or server files')
  else if (files.has('public/index.html')) {
    output = 'public'
    reasons.unshift('static files: index.html in public/, no package.json, Dockerfile or server files')
  } else {
    reasons.unshift('static files: no package.json, Dockerfile or server files (and no index.html: files are served as they are)')
  }
  reasons.push(`output: ${output} (no build)`)
  return { detected: 'static-files', install: null, build: null, staticOutput: output, start: procfile, server: procfile !== null, reasons }
}

function nodeDraft(source: SourceFacts, files: ReadonlySet<string>, procfile: string[] | null, reasons: string[]): Draft {
  let pkg: PackageJson
  try {
    const parsed: unknown = JSON.parse(source.read('package.json') ?? '')
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object')
    pkg = parsed as PackageJson
  } catch (error) {
    throw new MiosaError('invalid', `package.json is not valid JSON (${(error as Error).message})`, { details: { file: 'package.json' } })
  }
  const scripts = record(pkg.scripts)
  const deps = { ...record(pkg.dependencies), ...record(pkg.devDependencies) }
  const has = (name: string) => Object.hasOwn(deps, name)
  const script = (name: string) => (typeof scripts[name] === 'string' && scripts[name].trim() !== '' ? scripts[name] : undefined)
  const buildScript = script('build')
  const startScript = script('start')

  const serverPackage = SERVER_PACKAGES.find(has)
  // Without a start script, an entry file that starts a server is what runs.
  const entry = procfile === null && startScript === undefined ? nodeServerEntry(source, files, pkg, serverPackage) : undefined
  const start = procfile ?? (startScript !== undefined ? ['npm', 'start'] : entry !== undefined ? ['node', entry.entry] : null)
  const server = procfile !== null || entry !== undefined || (startScript !== undefined && (serverPackage !== undefined || /(^|\s|&&|;)(node|tsx|ts-node|nodemon|pm2)\s/.test(startScript)))
  if (startScript !== undefined) reasons.push(`start script: \`${startScript}\`${server && procfile === null ? ' (a server entrypoint)' : ''}`)
  if (entry !== undefined) reasons.push(`start: node ${entry.entry} (no start script; ${entry.why})`)
  if (serverPackage !== undefined) reasons.push(`server package: ${serverPackage}`)

  if (buildScript === undefined) {
    const index = files.has('index.html') ? '.' : files.has('public/index.html') ? 'public' : null
    if (!server && start === null && index !== null) {
      reasons.unshift('static files: package.json has no build or start script; index.html is served as it is')
      reasons.push(`output: ${index} (no build)`)
      return { detected: 'static-files', install: null, build: null, staticOutput: index, start: null, server: false, reasons }
    }
    reasons.unshift('node: package.json without a build script')
    return { detected: 'node', install: installStep(files, reasons), build: null, staticOutput: null, start, server: start !== null, reasons }
  }

  reasons.unshift(`node: package.json with a build script (\`${buildScript}\`)`)
  const install = installStep(files, reasons)
  const build = ['npm', 'run', 'build']
  const nextConfig = ['next.config.js', 'next.config.mjs', 'next.config.cjs', 'next.config.ts'].map((f) => source.read(f)).find((t) => t !== undefined)
  const framework = staticFramework({ has, buildScript, nextConfig })
  if (framework.output !== null) {
    reasons.push(`output: ${framework.output} (${framework.why})`)
    const spa = singlePageApp(has, buildScript)
    return { detected: 'node', install, build, staticOutput: framework.output, start, server: server || framework.server, spa, reasons }
  }
  if (framework.server) {
    reasons.push(framework.why)
    // A standalone Next.js server runs without node_modules, where `next start` would not: it wins over the start script.
    const frameworkFirst = framework.standalone === true && procfile === null
    return { detected: 'node', install, build, staticOutput: null, start: frameworkFirst ? (framework.start ?? null) : (start ?? framework.start ?? null), server: true, reasons }
  }
  const candidates = [...OUTPUT_CANDIDATES]
  reasons.push(`output: the first of ${candidates.join(', ')} the build writes (no known framework names it)`)
  return { detected: 'node', install, build, staticOutput: candidates[0] ?? 'dist', candidates, start, server, reasons }
}

/** A Node server started by its entry file: package.json `main` or a root server.js, index.js, app.js. */
function nodeServerEntry(source: SourceFacts, files: ReadonlySet<string>, pkg: PackageJson, serverPackage: string | undefined): { entry: string; why: string } | undefined {
  const main = typeof pkg.main === 'string' ? posix.normalize(pkg.main.trim()).replace(/^\.\//, '') : undefined
  const candidates = [...(main !== undefined && !main.startsWith('../') && files.has(main) ? [main] : []), ...NODE_ENTRIES.filter((f) => files.has(f))]
  for (const entry of candidates) {
    const text = source.read(entry)
    if (text !== undefined && LISTENS.test(text)) return { entry, why: `${entry} starts a server` }
    if (serverPackage !== undefined) return { entry, why: `${entry} with ${serverPackage}` }
  }
  return undefined
}

function installStep(files: ReadonlySet<string>, reasons: string[]): string[] {
  for (const [lock, tool] of [['yarn.lock', 'yarn'], ['pnpm-lock.yaml', 'pnpm'], ['bun.lockb', 'bun'], ['bun.lock', 'bun']] as const) {
    if (files.has(lock)) reasons.push(`${lock} found: installing with npm for now (${tool} arrives later)`)
  }
  if (files.has('package-lock.json') || files.has('npm-shrinkwrap.json')) {
    reasons.push(`install: npm ci (${files.has('package-lock.json') ? 'package-lock.json' : 'npm-shrinkwrap.json'} found)`)
    return ['npm', 'ci']
  }
  reasons.push('install: npm install (no package-lock.json)')
  return ['npm', 'install']
}

interface Framework {
  output: string | null
  /** The framework's output is a server (Next.js without export, Nuxt, SvelteKit's node adapter). */
  server: boolean
  start?: string[]
  /** Next.js `output: 'standalone'`: the release is .next/standalone with the assets it serves. */
  standalone?: boolean
  why: string
}

function staticFramework(o: { has(name: string): boolean; buildScript: string; nextConfig: string | undefined }): Framework {
  const { has, buildScript, nextConfig } = o
  if (has('next')) {
    if (/\bnext\s+export\b/.test(buildScript) || (nextConfig !== undefined && /output\s*:\s*['"`]export['"`]/.test(nextConfig))) {
      return { output: 'out', server: false, why: 'Next.js static export' }
    }
    if (nextConfig !== undefined && /output\s*:\s*['"`]standalone['"`]/.test(nextConfig)) {
      return { output: null, server: true, start: ['node', '.next/standalone/server.js'], standalone: true, why: "Next.js with `output: 'standalone'`: its server (.next/standalone/server.js) with .next/static and public, without node_modules" }
    }
    return { output: null, server: true, start: ['npx', 'next', 'start'], why: "Next.js without `output: 'export'`: a server (.next)" }
  }
  if (has('nuxt')) {
    if (/\bnuxi?\s+generate\b/.test(buildScript)) return { output: '.output/public', server: false, why: 'nuxt generate' }
    return { output: null, server: true, start: ['node', '.output/server/index.mjs'], why: 'Nuxt: a server (.output)' }
  }
  if (has('@sveltejs/kit')) {
    if (has('@sveltejs/adapter-static')) return { output: 'build', server: false, why: 'SvelteKit with adapter-static' }
    return { output: null, server: true, start: ['node', 'build'], why: 'SvelteKit: a server (build)' }
  }
  if (has('astro')) return { output: 'dist', server: false, why: 'Astro' }
  if (has('gatsby')) return { output: 'public', server: false, why: 'Gatsby' }
  if (has('react-scripts')) return { output: 'build', server: false, why: 'Create React App (react-scripts)' }
  if (has('vite') || /\bvite\s+build\b/.test(buildScript)) return { output: 'dist', server: false, why: 'Vite' }
  if (has('@vue/cli-service')) return { output: 'dist', server: false, why: 'Vue CLI' }
  if (has('parcel')) return { output: 'dist', server: false, why: 'Parcel' }
  return { output: null, server: false, why: '' }
}

/** Frameworks that write a page per route: their output is not one app shell, whatever bundler they use. */
const PAGE_GENERATORS = ['next', 'nuxt', '@sveltejs/kit', 'astro', 'gatsby', 'vitepress', '@docusaurus/core']

/** A Vite or Create React App build: one index.html that routes in the browser. */
function singlePageApp(has: (name: string) => boolean, buildScript: string): boolean {
  if (PAGE_GENERATORS.some(has)) return false
  return has('react-scripts') || has('vite') || /\bvite\s+build\b/.test(buildScript)
}

/** The settings decide; else a single-page app's static release falls back to index.html. */
function spaFallback(settings: BuildSettings, spa: boolean, reasons: string[]): boolean {
  if (settings.spa_fallback !== undefined) return settings.spa_fallback
  if (spa) reasons.push('spa_fallback: on (a single-page app: paths that match no file get index.html; set spa_fallback false to turn it off)')
  return spa
}

/** The web process of a Procfile (or its only process other than release), as an argv for sh. */
function procfileStart(text: string | undefined): string[] | null {
  const processes = procfileProcesses(text)
  const others = [...processes].filter(([name]) => name !== 'release')
  const web = processes.get('web') ?? (others.length === 1 ? others[0]?.[1] : undefined)
  return web === undefined ? null : ['sh', '-lc', web]
}

/** One named process of a Procfile, as an argv for sh. */
function procfileProcess(text: string | undefined, name: string): string[] | null {
  const line = procfileProcesses(text).get(name)
  return line === undefined ? null : ['sh', '-lc', line]
}

function procfileProcesses(text: string | undefined): Map<string, string> {
  const processes = new Map<string, string>()
  if (text === undefined) return processes
  for (const line of text.split(/\r?\n/)) {
    const match = /^([A-Za-z0-9_-]+)\s*:\s*(.+)$/.exec(line.trim())
    if (match?.[1] !== undefined && match[2] !== undefined) processes.set(match[1], match[2].trim())
  }
  return processes
}

/** A settings command line as argv: run by a login shell in /workspace; empty means no step. */
function command(line: string): string[] | null {
  return line.trim() === '' ? null : ['sh', '-lc', line]
}

function outputDir(given: string): string {
  const normal = posix.normalize(given.trim().replace(/^\.\/+/, '')).replace(/\/+$/, '')
  if (given.trim() === '' || posix.isAbsolute(normal) || normal === '..' || normal.startsWith('../') || normal.includes('\0')) {
    throw new MiosaError('invalid', `output_dir: ${JSON.stringify(given)} must be a directory inside the workspace, e.g. "dist"`, { details: { field: 'output_dir' } })
  }
  return normal === '' ? '.' : normal
}

function record(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {}
}

function describe(detected: BuildPlan['detected']): string {
  switch (detected) {
    case 'static-files':
      return 'a static site'
    case 'node':
      return 'this Node.js app'
    case 'dockerfile':
      return 'this Dockerfile app'
    case 'python':
      return 'this Python app'
    case 'ruby':
      return 'this Ruby app'
    case 'go':
      return 'this Go app'
  }
}
