import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readFile, readdir, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { MiosaError } from '../../core/errors.js'
import { NODE_PACKAGE, NPM_PACKAGE } from './node-distribution.js'

// What each template is (its parent, user, port, build inputs) and the hash of what
// defines its image, which a tag carries: whether an image is current is decided here,
// without Docker.

/** The internal Debian base every template descends from. */
export const BASE = 'base'
export const DEBIAN_SUITE = 'bookworm'

export interface TemplateDefinition {
  name: string
  description: string
  /** The template it builds on; null for the first (whose parent is the internal Debian base). */
  parent: string | null
  /** Who commands run as. */
  user: 'root' | 'miosa'
  /** The port its dev server listens on by convention, if any. */
  defaultPort: number | null
  /** A release's runtime base (miosa/runtime-<name>), never a sandbox template. */
  internal?: boolean
}

/** What a build context holds beyond templates/<name>/ (apt-install: the sandbox template's apt-install.sh). */
export type Input = 'node' | 'npm' | 'apt-install'

export interface Recipe extends TemplateDefinition {
  /** The parent image to build FROM (BASE for the first template). */
  from: string | null
  inputs: readonly Input[]
}

export const RECIPES: readonly Recipe[] = [
  {
    name: BASE,
    description: `Debian 12 (${DEBIAN_SUITE}) minbase from debootstrap`,
    parent: null,
    from: null,
    user: 'root',
    defaultPort: null,
    inputs: [],
  },
  {
    name: 'miosa-sandbox',
    description: 'Debian 12 with bash, git, curl and build tools, as user miosa, and a starter page in /workspace; every other template builds on it',
    parent: null,
    from: BASE,
    user: 'miosa',
    defaultPort: null,
    inputs: [],
  },
  {
    name: 'node',
    description: `Node.js ${NODE_PACKAGE.major} and npm ${NPM_PACKAGE.major}, and a node:http starter in /workspace (npm start, on $PORT)`,
    parent: 'miosa-sandbox',
    from: 'miosa-sandbox',
    user: 'miosa',
    defaultPort: 3000,
    inputs: ['node', 'npm'],
  },
  {
    name: 'nextjs',
    description: 'A Next.js 15 starter in /workspace with dependencies installed (npm run dev)',
    parent: 'node',
    from: 'node',
    user: 'miosa',
    defaultPort: 3000,
    inputs: [],
  },
  {
    name: 'python',
    description: 'Python 3 with pip and venv, and a Flask starter in /workspace (python app.py, on $PORT)',
    parent: 'miosa-sandbox',
    from: 'miosa-sandbox',
    user: 'miosa',
    defaultPort: 8000,
    inputs: [],
  },
  {
    name: 'static',
    description: 'A static site in /workspace (busybox httpd -f -p 8080 -h /workspace)',
    parent: 'miosa-sandbox',
    from: 'miosa-sandbox',
    user: 'miosa',
    defaultPort: 8080,
    inputs: [],
  },
  {
    name: 'go',
    description: 'Go 1.19 from Debian 12 (golang-go)',
    parent: 'miosa-sandbox',
    from: 'miosa-sandbox',
    user: 'miosa',
    defaultPort: 8080,
    inputs: [],
  },
  {
    name: 'ruby',
    description: 'Ruby 3.1 with bundler, Rack and Puma (rackup)',
    parent: 'miosa-sandbox',
    from: 'miosa-sandbox',
    user: 'miosa',
    defaultPort: 9292,
    inputs: [],
  },
  {
    name: 'runtime-node',
    description: `Releases of Node.js apps: Debian 12 minbase, CA certificates, Node.js ${NODE_PACKAGE.major} and npm ${NPM_PACKAGE.major}`,
    parent: null,
    from: BASE,
    user: 'miosa',
    defaultPort: null,
    internal: true,
    inputs: ['apt-install', 'node', 'npm'],
  },
  {
    name: 'runtime-python',
    description: "Releases of Python apps: Debian 12 minbase, CA certificates, Python 3 with Debian's Flask, gunicorn, FastAPI and uvicorn",
    parent: null,
    from: BASE,
    user: 'miosa',
    defaultPort: null,
    internal: true,
    inputs: ['apt-install'],
  },
]

/** The runtime base a release of each kind of app builds its release stage FROM. */
export const RUNTIME_FOR = { node: 'runtime-node', python: 'runtime-python' } as const

/** Where a template's apt-install.sh (the apt-install input) is, under the templates directory. */
export const APT_INSTALL_SCRIPT = ['miosa-sandbox', 'apt-install.sh'] as const

const RECIPE_BY_NAME = new Map(RECIPES.map((r) => [r.name, r]))

export function recipe(name: string): Recipe {
  const r = RECIPE_BY_NAME.get(name)
  if (r === undefined) throw new MiosaError('not_found', `template ${name} not found`)
  return r
}

/** Templates callers may name: every recipe but the internal base and runtimes. */
export function publicRecipe(name: string): Recipe {
  if (name === BASE || RECIPE_BY_NAME.get(name)?.internal === true) throw new MiosaError('not_found', `template ${name} not found`)
  return recipe(name)
}

export async function computeHash(r: Recipe, templatesDir: string, parentFingerprint: (name: string) => Promise<string>): Promise<string> {
  const hash = createHash('sha256').update(`miosa template v1\0${r.name}\0`)
  if (r.from === null) {
    hash.update(`debootstrap --variant=minbase ${DEBIAN_SUITE}\0`)
  } else {
    hash.update(`from ${await parentFingerprint(r.from)}\0`)
    // Inputs by their version ranges: a cached download is reused, so the range decides what goes in.
    const versions: Record<Input, string> = { node: `${NODE_PACKAGE.name}@${NODE_PACKAGE.major}`, npm: `${NPM_PACKAGE.name}@${NPM_PACKAGE.major}`, 'apt-install': 'apt-install.sh' }
    for (const input of r.inputs) hash.update(`input ${versions[input]}\0`)
    if (r.inputs.includes('apt-install')) hash.update(await readFile(join(templatesDir, ...APT_INSTALL_SCRIPT))).update('\0')
    const dir = join(templatesDir, r.name)
    let entries: string[]
    try {
      entries = (await readdir(dir, { recursive: true })).sort()
    } catch (error) {
      throw new MiosaError('internal', `template ${r.name} has no build files (${dir})`, { cause: error })
    }
    for (const entry of entries) {
      const path = join(dir, entry)
      const info = await stat(path)
      if (!info.isFile()) continue
      hash.update(`file ${entry} ${info.mode & 0o111 ? 'x' : '-'}\0`).update(await readFile(path)).update('\0')
    }
  }
  return hash.digest('hex').slice(0, 12)
}

/** templates/ at the package root, found from this file so it works from src/ (tests) and dist/ alike. */
export function packageTemplatesDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir)
    if (parent === dir) throw new MiosaError('internal', 'cannot find the miosa package root to locate the template Dockerfiles')
    dir = parent
  }
  return join(dir, 'templates')
}
