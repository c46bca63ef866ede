import { describe, expect, it } from 'vitest'
import { MiosaError } from '../../src/core/errors.js'
import type { BuildSettings, PublishKind } from '../../src/builder/builder.js'
import { detectPlan } from '../../src/builder/detect.js'
import { alwaysIgnored, parseIgnoreFile } from '../../src/builder/ignore-rules.js'

// Detection is pure: a layout in, a plan out.

function plan(files: Record<string, string>, kind: PublishKind = 'auto', settings: BuildSettings = {}) {
  return detectPlan({ files: Object.keys(files).sort(), read: (path) => files[path] }, kind, settings)
}

function pkg(o: { scripts?: Record<string, string>; dependencies?: Record<string, string>; devDependencies?: Record<string, string> }): string {
  return JSON.stringify(o)
}

function invalid(fn: () => unknown): MiosaError {
  try {
    fn()
  } catch (error) {
    expect(error).toBeInstanceOf(MiosaError)
    expect((error as MiosaError).code).toBe('invalid')
    return error as MiosaError
  }
  return expect.fail('expected an invalid error')
}

describe('detectPlan', () => {
  it('plain static files at the root: no steps, output .', () => {
    const p = plan({ 'index.html': '', 'style.css': '', 'img/logo.png': '' })
    expect(p).toMatchObject({ kind: 'static', detected: 'static-files', install: null, build: null, output_dir: '.', start: null, spa_fallback: false })
    expect(p.reasons.join('\n')).toMatch(/index\.html at the root/)
  })

  it('static files with index.html only in public/: output public', () => {
    expect(plan({ 'public/index.html': '', 'README.md': '' })).toMatchObject({ detected: 'static-files', output_dir: 'public', install: null, build: null })
  })

  it('Vite: npm install without a lockfile, npm run build, dist, static', () => {
    const p = plan({ 'package.json': pkg({ scripts: { dev: 'vite', build: 'vite build' }, devDependencies: { vite: '^6' } }), 'index.html': '', 'src/main.js': '' })
    expect(p).toMatchObject({ kind: 'static', detected: 'node', install: ['npm', 'install'], build: ['npm', 'run', 'build'], output_dir: 'dist' })
    expect(p.output_candidates).toBeUndefined()
    expect(p.reasons.join('\n')).toMatch(/Vite/)
  })

  it('npm ci when package-lock.json exists', () => {
    const p = plan({ 'package.json': pkg({ scripts: { build: 'vite build' }, devDependencies: { vite: '^6' } }), 'package-lock.json': '{}' })
    expect(p.install).toEqual(['npm', 'ci'])
  })

  it('yarn and pnpm lockfiles are noted, npm still installs', () => {
    const p = plan({ 'package.json': pkg({ scripts: { build: 'vite build' }, devDependencies: { vite: '^6' } }), 'yarn.lock': '', 'pnpm-lock.yaml': '' })
    expect(p.install).toEqual(['npm', 'install'])
    expect(p.reasons.join('\n')).toMatch(/yarn\.lock found/)
    expect(p.reasons.join('\n')).toMatch(/pnpm-lock\.yaml found/)
  })

  it('Create React App builds to build/', () => {
    const p = plan({ 'package.json': pkg({ scripts: { start: 'react-scripts start', build: 'react-scripts build' }, dependencies: { 'react-scripts': '5' } }) })
    expect(p).toMatchObject({ kind: 'static', output_dir: 'build', start: ['npm', 'start'] })
  })

  it("Next.js with output: 'export' builds to out/", () => {
    const p = plan({ 'package.json': pkg({ scripts: { build: 'next build', start: 'next start' }, dependencies: { next: '15' } }), 'next.config.mjs': "export default { output: 'export' }" })
    expect(p).toMatchObject({ kind: 'static', output_dir: 'out' })
  })

  it('Next.js without export is a server: dynamic', () => {
    const p = plan({ 'package.json': pkg({ scripts: { build: 'next build', start: 'next start' }, dependencies: { next: '15' } }) })
    expect(p).toMatchObject({ kind: 'dynamic', detected: 'node', output_dir: '.', start: ['npm', 'start'] })
  })

  it('Next.js without export and kind static is refused clearly', () => {
    const error = invalid(() => plan({ 'package.json': pkg({ scripts: { build: 'next build' }, dependencies: { next: '15' } }) }, 'static'))
    expect(error.message).toMatch(/kind static: .*no static output.*output_dir/)
  })

  it('an unknown build tool: output is the first of dist, build, out, checked after the build', () => {
    const p = plan({ 'package.json': pkg({ scripts: { build: 'node make.js' } }) })
    expect(p).toMatchObject({ kind: 'static', output_dir: 'dist', output_candidates: ['dist', 'build', 'out'] })
  })

  it('an Express server with a build step and a start script is dynamic', () => {
    const p = plan({ 'package.json': pkg({ scripts: { build: 'tsc', start: 'node dist/server.js' }, dependencies: { express: '5' } }) })
    expect(p).toMatchObject({ kind: 'dynamic', start: ['npm', 'start'], output_dir: '.' })
  })

  it('a start script without a build step is dynamic with npm start', () => {
    const p = plan({ 'package.json': pkg({ scripts: { start: 'node server.js' } }), 'server.js': '' })
    expect(p).toMatchObject({ kind: 'dynamic', detected: 'node', install: ['npm', 'install'], build: null, start: ['npm', 'start'] })
  })

  it('a Procfile makes a static build dynamic', () => {
    const p = plan({ 'package.json': pkg({ scripts: { build: 'vite build' }, devDependencies: { vite: '6' } }), Procfile: 'web: node server.js\nworker: node jobs.js\n' })
    expect(p).toMatchObject({ kind: 'dynamic', start: ['sh', '-lc', 'node server.js'] })
  })

  it('package.json without scripts next to index.html is plain static files', () => {
    expect(plan({ 'package.json': pkg({}), 'index.html': '' })).toMatchObject({ kind: 'static', detected: 'static-files', install: null, build: null, output_dir: '.' })
  })

  it('a Dockerfile is a dynamic dockerfile build', () => {
    expect(plan({ Dockerfile: 'FROM debian', 'index.html': '' })).toMatchObject({ kind: 'dynamic', detected: 'dockerfile', install: null, build: null })
  })

  it('kind static ignores a Dockerfile', () => {
    const p = plan({ Dockerfile: 'FROM debian', 'index.html': '' }, 'static')
    expect(p).toMatchObject({ kind: 'static', detected: 'static-files', output_dir: '.' })
    expect(p.reasons.join('\n')).toMatch(/Dockerfile is not used/)
  })

  it('Python, Ruby and Go are recorded as dynamic', () => {
    expect(plan({ 'requirements.txt': 'flask', 'app.py': '' })).toMatchObject({ kind: 'dynamic', detected: 'python', install: ['pip', 'install', '-r', 'requirements.txt'], start: ['python', 'app.py'] })
    expect(plan({ 'pyproject.toml': '', Procfile: 'web: gunicorn app:app' })).toMatchObject({ detected: 'python', install: ['pip', 'install', '.'], start: ['sh', '-lc', 'gunicorn app:app'] })
    expect(plan({ Gemfile: '', 'config.ru': '' })).toMatchObject({ kind: 'dynamic', detected: 'ruby', install: ['bundle', 'install'], start: ['sh', '-lc', 'puma -b tcp://0.0.0.0:$PORT config.ru'] })
    expect(plan({ 'go.mod': 'module x', 'main.go': '' })).toMatchObject({ kind: 'dynamic', detected: 'go', build: ['go', 'build', '-o', 'app', '.'], start: ['./app'] })
  })

  it('a Procfile without a package manifest is dynamic in the language its command runs', () => {
    const python = plan({ Procfile: 'web: python3 server.py\n', 'server.py': 'import http.server\n' })
    expect(python).toMatchObject({ kind: 'dynamic', detected: 'python', install: null, build: null, start: ['sh', '-lc', 'python3 server.py'] })
    expect(python.reasons[0]).toMatch(/^python: a Procfile without a package manifest \(its command runs python\)/)
    const node = plan({ Procfile: 'web: node server.js', 'server.js': "require('node:http').createServer().listen(process.env.PORT)" })
    expect(node).toMatchObject({ kind: 'dynamic', detected: 'node', install: null, build: null, start: ['sh', '-lc', 'node server.js'] })
    expect(plan({ Procfile: 'web: exec env DEBUG=1 /usr/bin/ruby app.rb' })).toMatchObject({ kind: 'dynamic', detected: 'ruby', install: null })
    // A command that names no language: the files do, else the release is the files and the command.
    const script = plan({ Procfile: 'web: ./run.sh', 'run.sh': '', 'main.py': '' })
    expect(script).toMatchObject({ kind: 'dynamic', detected: 'python', start: ['sh', '-lc', './run.sh'] })
    expect(script.reasons[0]).toMatch(/python source files/)
    const unknown = plan({ Procfile: 'web: ./serve', 'index.html': '' })
    expect(unknown).toMatchObject({ kind: 'dynamic', detected: 'static-files', start: ['sh', '-lc', './serve'] })
    expect(unknown.reasons.join('\n')).toMatch(/runs as it is, in the miosa-sandbox template/)
    // Asked for static, the index.html is served as files.
    expect(plan({ Procfile: 'web: python3 -m http.server', 'index.html': '' }, 'static')).toMatchObject({ kind: 'static', detected: 'static-files', output_dir: '.' })
  })

  it('Django: manage.py and a project WSGI module run under gunicorn', () => {
    const p = plan({ 'requirements.txt': 'Django>=4\ngunicorn\n', 'manage.py': '', 'clinic/wsgi.py': '', 'clinic/settings.py': '', 'app.py': '' })
    expect(p).toMatchObject({ kind: 'dynamic', detected: 'python', install: ['pip', 'install', '-r', 'requirements.txt'], start: ['sh', '-lc', 'gunicorn --bind 0.0.0.0:$PORT clinic.wsgi'] })
    expect(p.reasons.join('\n')).toMatch(/Django: manage\.py and clinic\/wsgi\.py/)
  })

  it('Ruby: vendored gems install locally; rackup inside the bundle when it names a server; Rails; config.ru alone', () => {
    const vendored = plan({ Gemfile: "gem 'rack'\ngem 'hello'\n", 'config.ru': '', 'vendor/cache/hello-1.0.0.gem': '' })
    expect(vendored).toMatchObject({ kind: 'dynamic', detected: 'ruby', install: ['bundle', 'install', '--local', '--no-cache'] })
    expect(vendored.reasons.join('\n')).toMatch(/vendor\/cache/)
    expect(plan({ Gemfile: "source 'https://rubygems.org'\ngem \"puma\", \"~> 6\"\n", 'config.ru': '' }).start).toEqual(['sh', '-lc', 'bundle exec rackup config.ru -o 0.0.0.0 -p $PORT'])
    const rails = plan({ Gemfile: "gem 'rails'\ngem 'puma'\n", 'config.ru': '', 'bin/rails': '', 'config/application.rb': '' })
    expect(rails.start).toEqual(['sh', '-lc', 'bin/rails server -b 0.0.0.0 -p $PORT'])
    expect(rails.reasons.join('\n')).toMatch(/a Rails app/)
    const rack = plan({ 'config.ru': 'run ->(env) { [200, {}, ["hi"]] }' })
    expect(rack).toMatchObject({ kind: 'dynamic', detected: 'ruby', install: null, start: ['sh', '-lc', 'rackup config.ru -o 0.0.0.0 -p $PORT'] })
    expect(plan({ Gemfile: '', 'config.ru': '', Procfile: 'web: bundle exec puma -p $PORT' }).start).toEqual(['sh', '-lc', 'bundle exec puma -p $PORT'])
  })

  it('Go: go build of the root package, or of the only cmd/<name>; the binary is the start', () => {
    const root = plan({ 'go.mod': 'module example.com/hello\n\ngo 1.19\n', 'main.go': '', 'main_test.go': '' })
    expect(root).toMatchObject({ kind: 'dynamic', detected: 'go', install: null, build: ['go', 'build', '-o', 'app', '.'], start: ['./app'] })
    expect(root.reasons.join('\n')).toMatch(/CGO_ENABLED=0; the release holds the binary alone/)
    const cmd = plan({ 'go.mod': 'module x', 'cmd/server/main.go': '', 'internal/db/db.go': '', 'vendor/modules.txt': '' })
    expect(cmd.build).toEqual(['go', 'build', '-o', 'app', './cmd/server'])
    expect(cmd.reasons.join('\n')).toMatch(/modules: vendor\//)
    expect(plan({ 'go.mod': 'module x', 'main.go': '', Procfile: 'web: ./app -addr :$PORT' }).start).toEqual(['sh', '-lc', './app -addr :$PORT'])
  })

  it('Vite and Create React App are single-page apps: SPA fallback on unless the settings say otherwise', () => {
    const vite = plan({ 'package.json': pkg({ scripts: { build: 'vite build' }, devDependencies: { vite: '^6' } }), 'index.html': '' })
    expect(vite).toMatchObject({ kind: 'static', output_dir: 'dist', spa_fallback: true })
    expect(vite.reasons.join('\n')).toMatch(/spa_fallback: on \(a single-page app/)
    const cra = { 'package.json': pkg({ scripts: { build: 'react-scripts build' }, dependencies: { 'react-scripts': '5' } }) }
    expect(plan(cra).spa_fallback).toBe(true)
    const off = plan(cra, 'auto', { spa_fallback: false })
    expect(off.spa_fallback).toBe(false)
    expect(off.reasons.join('\n')).not.toMatch(/spa_fallback/)
    // Page generators built with Vite are not one app shell; neither is a server.
    expect(plan({ 'package.json': pkg({ scripts: { build: 'astro build' }, dependencies: { astro: '5', vite: '6' } }) }).spa_fallback).toBe(false)
    expect(plan({ 'package.json': pkg({ scripts: { build: 'vite build', start: 'node server.js' }, dependencies: { vite: '6', express: '5' } }) })).toMatchObject({ kind: 'dynamic', spa_fallback: false })
    expect(plan({ 'index.html': '' }).spa_fallback).toBe(false)
  })

  it('a Procfile release line is the release command; absent, release is null', () => {
    const p = plan({ 'package.json': pkg({ scripts: { start: 'node server.js' } }), Procfile: 'web: node server.js\nrelease: node migrate.js\n' })
    expect(p).toMatchObject({ start: ['sh', '-lc', 'node server.js'], release: ['sh', '-lc', 'node migrate.js'] })
    expect(plan({ 'index.html': '' }).release).toBeNull()
    // A release line alone is not the web process.
    expect(plan({ 'package.json': pkg({ scripts: { start: 'node s.js' }, dependencies: { express: '5' } }), Procfile: 'release: node migrate.js' })).toMatchObject({ start: ['npm', 'start'], release: ['sh', '-lc', 'node migrate.js'] })
  })

  it('a Procfile web line decides the start of a Dockerfile app too', () => {
    expect(plan({ Dockerfile: 'FROM x', Procfile: 'web: ./serve' })).toMatchObject({ detected: 'dockerfile', start: ['sh', '-lc', './serve'] })
  })

  it('Node servers without a start script run their entry: express, fastify, node:http, package.json main', () => {
    const express = plan({ 'package.json': pkg({ dependencies: { express: '5' } }), 'server.js': "const app = require('express')()" })
    expect(express).toMatchObject({ kind: 'dynamic', detected: 'node', install: ['npm', 'install'], start: ['node', 'server.js'] })
    expect(express.reasons.join('\n')).toMatch(/start: node server\.js/)
    expect(plan({ 'package.json': pkg({ dependencies: { fastify: '5' } }), 'index.js': '' })).toMatchObject({ kind: 'dynamic', start: ['node', 'index.js'] })
    const http = plan({ 'package.json': pkg({}), 'app.js': "require('node:http').createServer((q, s) => s.end('hi')).listen(process.env.PORT)" })
    expect(http).toMatchObject({ kind: 'dynamic', start: ['node', 'app.js'] })
    expect(plan({ 'package.json': JSON.stringify({ main: './src/main.js', dependencies: { koa: '2' } }), 'src/main.js': '' })).toMatchObject({ kind: 'dynamic', start: ['node', 'src/main.js'] })
    // A script that starts no server, next to index.html, is still a static site.
    expect(plan({ 'package.json': pkg({}), 'index.js': 'console.log(1)', 'index.html': '' })).toMatchObject({ kind: 'static' })
  })

  it('Next.js with next start is dynamic with npm start', () => {
    const p = plan({ 'package.json': pkg({ scripts: { build: 'next build', start: 'next start' }, dependencies: { next: '15' } }) })
    expect(p).toMatchObject({ kind: 'dynamic', build: ['npm', 'run', 'build'], start: ['npm', 'start'] })
  })

  it("Next.js with output: 'standalone' starts its standalone server, over the start script but not over a Procfile", () => {
    const files = { 'package.json': pkg({ scripts: { build: 'next build', start: 'next start' }, dependencies: { next: '15' } }), 'next.config.ts': "const config = { output: 'standalone' }\nexport default config\n" }
    const p = plan(files)
    expect(p).toMatchObject({ kind: 'dynamic', build: ['npm', 'run', 'build'], start: ['node', '.next/standalone/server.js'] })
    expect(p.reasons.join('\n')).toMatch(/standalone/)
    expect(plan({ ...files, Procfile: 'web: npm start\n' }).start).toEqual(['sh', '-lc', 'npm start'])
  })

  it('Python: FastAPI under uvicorn, Flask under gunicorn, on $PORT through sh -lc', () => {
    const fastapi = plan({ 'requirements.txt': 'fastapi\nuvicorn\n', 'main.py': 'from fastapi import FastAPI\napi = FastAPI()\n' })
    expect(fastapi).toMatchObject({ kind: 'dynamic', detected: 'python', start: ['sh', '-lc', 'uvicorn main:api --host 0.0.0.0 --port $PORT'] })
    expect(fastapi.reasons.join('\n')).toMatch(/uvicorn main:api/)
    expect(plan({ 'requirements.txt': 'fastapi==0.100', 'app.py': '' }).start).toEqual(['sh', '-lc', 'uvicorn app:app --host 0.0.0.0 --port $PORT'])
    const flask = plan({ 'requirements.txt': 'Flask>=2\n', 'app.py': 'from flask import Flask\napp = Flask(__name__)\n' })
    expect(flask.start).toEqual(['sh', '-lc', 'gunicorn --bind 0.0.0.0:$PORT app:app'])
    expect(plan({ 'requirements.txt': 'flask\ngunicorn\n', 'main.py': '' }).start).toEqual(['sh', '-lc', 'gunicorn --bind 0.0.0.0:$PORT main:app'])
    expect(plan({ 'pyproject.toml': '[project]\ndependencies = ["fastapi"]\n', 'main.py': '' }).start).toEqual(['sh', '-lc', 'uvicorn main:app --host 0.0.0.0 --port $PORT'])
    // The Procfile still decides.
    expect(plan({ 'requirements.txt': 'fastapi', Procfile: 'web: hypercorn main:app' }).start).toEqual(['sh', '-lc', 'hypercorn main:app'])
  })

  it('settings override install, build and output_dir as sh -lc command lines', () => {
    const p = plan({ 'package.json': pkg({ scripts: { build: 'vite build' }, devDependencies: { vite: '6' } }) }, 'auto', {
      install_command: 'npm ci --omit=optional',
      build_command: 'npm run build:prod',
      output_dir: './site/',
      spa_fallback: true,
    })
    expect(p).toMatchObject({ install: ['sh', '-lc', 'npm ci --omit=optional'], build: ['sh', '-lc', 'npm run build:prod'], output_dir: 'site', spa_fallback: true })
    expect(p.output_candidates).toBeUndefined()
  })

  it('a build command turns plain static files into a build', () => {
    expect(plan({ 'index.html': '' }, 'auto', { build_command: 'make site', output_dir: '_site' })).toMatchObject({ kind: 'static', install: null, build: ['sh', '-lc', 'make site'], output_dir: '_site' })
  })

  it('an empty install command skips the step', () => {
    expect(plan({ 'package.json': pkg({ scripts: { build: 'vite build' }, devDependencies: { vite: '6' } }) }, 'auto', { install_command: '' }).install).toBeNull()
  })

  it('an output_dir outside the workspace is refused', () => {
    expect(invalid(() => plan({ 'index.html': '' }, 'auto', { output_dir: '../etc' })).details).toMatchObject({ field: 'output_dir' })
    invalid(() => plan({ 'index.html': '' }, 'auto', { output_dir: '/etc' }))
  })

  it('kind static with a Python app and no output_dir is refused; with output_dir it is static', () => {
    invalid(() => plan({ 'requirements.txt': '', Procfile: 'web: python app.py' }, 'static'))
    // kind static skips language detection: the files are static.
    expect(plan({ 'requirements.txt': '', 'index.html': '' }, 'static')).toMatchObject({ kind: 'static', detected: 'static-files' })
  })

  it('kind dynamic needs something to run', () => {
    expect(invalid(() => plan({ 'index.html': '' }, 'dynamic')).message).toMatch(/no server to run/)
    expect(plan({ 'package.json': pkg({ scripts: { build: 'vite build', start: 'vite preview' }, devDependencies: { vite: '6' } }) }, 'dynamic')).toMatchObject({ kind: 'dynamic', start: ['npm', 'start'] })
  })

  it('a package.json that is not JSON is a clear error', () => {
    expect(invalid(() => plan({ 'package.json': '{ nope' })).message).toMatch(/package\.json is not valid JSON/)
  })

  it('nothing to publish: no index.html, no build, no start', () => {
    invalid(() => plan({ 'package.json': pkg({ scripts: { test: 'vitest' } }) }))
  })
})

describe('ignore rules', () => {
  it('always leaves out dependency, cache and VCS directories at any depth', () => {
    expect(alwaysIgnored('node_modules', true)).toBe(true)
    expect(alwaysIgnored('node_modules/vite/index.js', false)).toBe(true)
    expect(alwaysIgnored('packages/a/node_modules/x.js', false)).toBe(true)
    expect(alwaysIgnored('.git/HEAD', false)).toBe(true)
    expect(alwaysIgnored('.next/cache/x', false)).toBe(true)
    expect(alwaysIgnored('.next/server/x.js', false)).toBe(false)
    expect(alwaysIgnored('src/__pycache__/a.pyc', false)).toBe(true)
    expect(alwaysIgnored('.venv', true)).toBe(true)
    expect(alwaysIgnored('node_modules.txt', false)).toBe(false)
    expect(alwaysIgnored('src/.cache', false)).toBe(false)
  })

  it('.miosaignore: globs, anchors, directories only, negation', () => {
    const rules = parseIgnoreFile('# comment\n\n*.log\n/secret.txt\ntmp/\ndocs/**/*.pdf\n!keep.log\n')
    expect(rules.ignores('a.log', false)).toBe(true)
    expect(rules.ignores('src/deep/b.log', false)).toBe(true)
    expect(rules.ignores('keep.log', false)).toBe(false)
    expect(rules.ignores('secret.txt', false)).toBe(true)
    expect(rules.ignores('src/secret.txt', false)).toBe(false)
    expect(rules.ignores('tmp', true)).toBe(true)
    expect(rules.ignores('tmp/x.js', false)).toBe(true)
    expect(rules.ignores('a/tmp/x.js', false)).toBe(true)
    expect(rules.ignores('tmp', false)).toBe(false)
    expect(rules.ignores('docs/a.pdf', false)).toBe(true)
    expect(rules.ignores('docs/x/y/a.pdf', false)).toBe(true)
    expect(rules.ignores('docs/a.md', false)).toBe(false)
  })
})
