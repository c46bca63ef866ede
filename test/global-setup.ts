import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import Docker from 'dockerode'
import pino from 'pino'
import { loadConfig } from '../src/config.js'
import { TemplateImages } from '../src/runtime/docker/template-images.js'

// Before any test file: the sandbox agent is built (containers run its bundle in dist/, not src/),
// and the template images the tests start sandboxes from are built once, into the same
// cache the platform uses, so no test pays for a build inside its own timeout.

const AGENT_SOURCES = ['src/runtime/agent/agent.ts', ...readdirSync('src/runtime/agent/inside').map((name) => `src/runtime/agent/inside/${name}`)]
const AGENT_BUILT = 'dist/runtime/agent/agent.cjs'
const TEMPLATES_USED_BY_TESTS = ['node', 'nextjs', 'python', 'static', 'go', 'ruby']
/** The slim images Node and Python releases are built on. */
const RUNTIMES_USED_BY_TESTS = ['runtime-node', 'runtime-python']

export default async function setup(): Promise<void> {
  if (!existsSync(AGENT_BUILT) || AGENT_SOURCES.some((source) => statSync(AGENT_BUILT).mtimeMs < statSync(source).mtimeMs)) {
    execFileSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' })
  }
  const config = loadConfig({}, { MIOSA_CACHE_DIR: process.env.MIOSA_CACHE_DIR })
  const images = new TemplateImages({
    docker: new Docker(),
    cacheDir: config.cacheDir,
    ...(config.caBundle === undefined ? {} : { caBundle: config.caBundle }),
    logger: pino({ level: 'silent' }),
  })
  for (const name of TEMPLATES_USED_BY_TESTS) {
    const started = Date.now()
    let announced = false
    await images.ensure(name, () => {
      if (announced) return
      announced = true
      process.stderr.write(`building sandbox template ${name} (first run on this machine)…\n`)
    })
    if (announced) process.stderr.write(`built ${name} in ${Math.round((Date.now() - started) / 1000)} s\n`)
  }
  for (const name of RUNTIMES_USED_BY_TESTS) {
    const started = Date.now()
    await images.ensureRuntime(name)
    const ms = Date.now() - started
    if (ms > 2000) process.stderr.write(`built ${name} in ${Math.round(ms / 1000)} s\n`)
  }
}
