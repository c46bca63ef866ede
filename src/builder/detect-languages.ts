import type { Draft, SourceFacts } from './detect.js'

// Detection of the apps that are not Node: Python, Ruby and Go by their manifests, and a
// Procfile's command in a source without any manifest (a stdlib-only Python server, a Node
// script without package.json). Pure, like detect.ts; every decision leaves a reason.

/** Python modules that may hold the ASGI/WSGI `app`, in the order tried. */
export const PYTHON_MODULES = ['main.py', 'app.py'] as const

/** Gems that are a Rack server `rackup` can run inside the bundle. */
const RACK_SERVERS = ['puma', 'thin', 'falcon', 'unicorn', 'webrick', 'passenger', 'iodine']

type Base = Pick<Draft, 'build' | 'staticOutput' | 'server' | 'reasons'>

/** Python, Ruby or Go from their manifests (or a config.ru), or undefined. */
export function otherLanguage(source: SourceFacts, files: ReadonlySet<string>, procfile: string[] | null, reasons: string[]): Draft | undefined {
  const base: Base = { build: null, staticOutput: null, server: true, reasons }
  if (files.has('requirements.txt') || files.has('pyproject.toml') || files.has('Pipfile')) {
    const marker = files.has('requirements.txt') ? 'requirements.txt' : files.has('pyproject.toml') ? 'pyproject.toml' : 'Pipfile'
    reasons.unshift(`python: ${marker} found (served as a dynamic release)`)
    const install = marker === 'requirements.txt' ? ['pip', 'install', '-r', 'requirements.txt'] : marker === 'pyproject.toml' ? ['pip', 'install', '.'] : ['pipenv', 'install', '--deploy']
    return { ...base, detected: 'python', install, start: procfile ?? pythonStart(source, files, reasons) }
  }
  if (files.has('Gemfile') || files.has('config.ru')) return rubyDraft(source, files, procfile, base)
  if (files.has('go.mod')) return goDraft(files, procfile, base)
  return undefined
}

/**
 * A source with a Procfile and no manifest: the language its web command runs (python,
 * node, ruby), else the language of its files. Undefined when neither says.
 */
export function procfileLanguage(files: ReadonlySet<string>, procfile: string[], reasons: string[]): Draft | undefined {
  const line = procfile.at(-1) ?? ''
  const byCommand = languageOfCommand(line)
  const language = byCommand ?? languageOfFiles(files)
  if (language === undefined) return undefined
  reasons.unshift(`${language}: a Procfile without a package manifest (${byCommand === undefined ? `${language} source files` : `its command runs ${language}`}); nothing to install`)
  return { detected: language, install: null, build: null, staticOutput: null, start: procfile, server: true, reasons }
}

function rubyDraft(source: SourceFacts, files: ReadonlySet<string>, procfile: string[] | null, base: Base): Draft {
  const { reasons } = base
  const gemfile = files.has('Gemfile')
  reasons.unshift(gemfile ? 'ruby: Gemfile found (served as a dynamic release)' : 'ruby: config.ru without a Gemfile (served with the Rack that comes with the template)')
  let install: string[] | null = null
  if (gemfile) {
    const vendored = [...files].some((f) => f.startsWith('vendor/cache/'))
    install = vendored ? ['bundle', 'install', '--local', '--no-cache'] : ['bundle', 'install']
    reasons.push(vendored ? 'install: bundle install --local --no-cache (gems vendored in vendor/cache, or Debian packages)' : 'install: bundle install (gems from rubygems.org, or Debian packages already installed)')
  }
  return { ...base, detected: 'ruby', install, start: procfile ?? rubyStart(source, files, reasons) }
}

/** Rails through bin/rails, else config.ru through rackup; on $PORT. */
function rubyStart(source: SourceFacts, files: ReadonlySet<string>, reasons: string[]): string[] | null {
  if (files.has('bin/rails') && files.has('config/application.rb')) {
    reasons.push('start: bin/rails server (a Rails app: bin/rails and config/application.rb)')
    return ['sh', '-lc', 'bin/rails server -b 0.0.0.0 -p $PORT']
  }
  if (!files.has('config.ru')) return null
  if (!files.has('Gemfile')) {
    reasons.push('start: rackup config.ru (Puma)')
    return ['sh', '-lc', 'rackup config.ru -o 0.0.0.0 -p $PORT']
  }
  const gems = gemsNamed(source.read('Gemfile') ?? '')
  const server = RACK_SERVERS.find((g) => gems.has(g))
  if (server !== undefined) {
    reasons.push(`start: bundle exec rackup config.ru (${server} in the Gemfile)`)
    return ['sh', '-lc', 'bundle exec rackup config.ru -o 0.0.0.0 -p $PORT']
  }
  // Inside the bundle rackup finds no server the Gemfile does not name: the template's Puma runs it, outside the bundle.
  reasons.push("start: puma config.ru (no Rack server in the Gemfile: the template's Puma)")
  return ['sh', '-lc', 'puma -b tcp://0.0.0.0:$PORT config.ru']
}

function goDraft(files: ReadonlySet<string>, procfile: string[] | null, base: Base): Draft {
  const { reasons } = base
  reasons.unshift('go: go.mod found (served as a dynamic release)')
  const pkg = goMainPackage(files)
  reasons.push(`build: go build ${pkg} (CGO_ENABLED=0; the release holds the binary alone)`)
  if (files.has('vendor/modules.txt')) reasons.push('modules: vendor/ (no download)')
  return { ...base, detected: 'go', install: null, build: ['go', 'build', '-o', 'app', pkg], start: procfile ?? ['./app'] }
}

/** `.` when the module's root is a main package, else its only cmd/<name>. */
function goMainPackage(files: ReadonlySet<string>): string {
  if ([...files].some((f) => /^[^/]+\.go$/.test(f) && !f.endsWith('_test.go'))) return '.'
  const commands = new Set([...files].map((f) => /^cmd\/([^/]+)\/[^/]+\.go$/.exec(f)?.[1]).filter((c) => c !== undefined))
  return commands.size === 1 ? `./cmd/${[...commands][0] ?? ''}` : '.'
}

/** How a Python app without a Procfile starts: Django or a WSGI app under gunicorn, an ASGI app under uvicorn, else its script. */
function pythonStart(source: SourceFacts, files: ReadonlySet<string>, reasons: string[]): string[] | null {
  const django = files.has('manage.py') ? [...files].find((f) => /^[A-Za-z_]\w*\/wsgi\.py$/.test(f)) : undefined
  if (django !== undefined) {
    const module = `${django.split('/')[0] ?? ''}.wsgi`
    reasons.push(`start: gunicorn ${module} (Django: manage.py and ${django})`)
    return ['sh', '-lc', `gunicorn --bind 0.0.0.0:$PORT ${module}`]
  }
  const named = pythonPackages(source.read('requirements.txt') ?? '', source.read('pyproject.toml') ?? '')
  const modules = PYTHON_MODULES.filter((f) => files.has(f))
  const found = (pattern: RegExp) => {
    for (const file of modules) {
      const match = pattern.exec(source.read(file) ?? '')
      if (match !== null) return { file, app: match[1] ?? 'app' }
    }
    return undefined
  }
  const asgi = found(/^(\w+)\s*(?::[^=\n]*)?=\s*FastAPI\s*\(/m) ?? found(/\bFastAPI\s*\(/)
  if (asgi !== undefined || named.has('fastapi') || named.has('uvicorn')) {
    const file = asgi?.file ?? modules[0] ?? 'main.py'
    const target = `${file.replace(/\.py$/, '')}:${asgi?.app ?? 'app'}`
    reasons.push(`start: uvicorn ${target} (${asgi === undefined ? 'fastapi or uvicorn in the requirements' : `FastAPI( in ${file}`})`)
    return ['sh', '-lc', `uvicorn ${target} --host 0.0.0.0 --port $PORT`]
  }
  // A Flask app needs an app object to serve: named in the source, or gunicorn asked for by name.
  const wsgi = found(/^(\w+)\s*(?::[^=\n]*)?=\s*Flask\s*\(/m) ?? found(/\bFlask\s*\(/)
  if (wsgi !== undefined || named.has('gunicorn')) {
    const file = wsgi?.file ?? [...modules].reverse()[0] ?? 'app.py'
    const target = `${file.replace(/\.py$/, '')}:${wsgi?.app ?? 'app'}`
    reasons.push(`start: gunicorn ${target} (${wsgi === undefined ? 'gunicorn in the requirements' : `Flask( in ${file}`})`)
    return ['sh', '-lc', `gunicorn --bind 0.0.0.0:$PORT ${target}`]
  }
  const entry = ['app.py', 'main.py'].find((f) => files.has(f))
  if (entry === undefined) return null
  reasons.push(`start: python ${entry}`)
  return ['python', entry]
}

/** Lowercased distribution names: one per requirements.txt line, and pyproject.toml's quoted requirement strings. */
function pythonPackages(requirements: string, pyproject: string): Set<string> {
  const names = new Set<string>()
  const add = (name: string | undefined) => {
    if (name !== undefined) names.add(name.toLowerCase().replace(/[._]/g, '-'))
  }
  for (const match of requirements.matchAll(/^\s*([A-Za-z0-9][A-Za-z0-9._-]*)/gm)) add(match[1])
  for (const match of pyproject.matchAll(/["']([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?:[<>=!~;]|["'])/g)) add(match[1])
  return names
}

/** The gems a Gemfile names (`gem 'name'` lines). */
function gemsNamed(gemfile: string): Set<string> {
  return new Set([...gemfile.matchAll(/^\s*gem\s+["']([\w.-]+)["']/gm)].map((m) => (m[1] ?? '').toLowerCase()))
}

/** The program a command line runs, past `exec`, `env` and VAR=value words. */
function languageOfCommand(line: string): 'python' | 'node' | 'ruby' | undefined {
  const words = line.trim().split(/\s+/)
  let i = 0
  while (i < words.length && (words[i] === 'exec' || words[i] === 'env' || /^[A-Za-z_]\w*=/.test(words[i] ?? ''))) i++
  const program = (words[i] ?? '').split('/').at(-1) ?? ''
  if (/^python[0-9.]*$|^(gunicorn|uvicorn|hypercorn|flask|waitress-serve)$/.test(program)) return 'python'
  if (/^(node|nodejs|npm|npx|tsx)$/.test(program)) return 'node'
  if (/^(ruby|rackup|puma|bundle|rails)$/.test(program)) return 'ruby'
  return undefined
}

function languageOfFiles(files: ReadonlySet<string>): 'python' | 'node' | 'ruby' | undefined {
  const top = [...files].filter((f) => !f.includes('/'))
  if (top.some((f) => f.endsWith('.py'))) return 'python'
  if (top.some((f) => /\.(m|c)?js$/.test(f))) return 'node'
  if (top.some((f) => f.endsWith('.rb'))) return 'ruby'
  return undefined
}
