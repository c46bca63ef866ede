import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { gzipSync } from 'node:zlib'
import Docker from 'dockerode'
import { create } from 'tar'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cliAs } from '../helpers/cli.js'
import { getViaEdge } from '../helpers/e2e.js'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'

// Common app shapes beyond Node, published from local directories with the real `miosa` bin
// against a real platform on the real Docker Engine, each served at its URL through the edge:
// a stdlib-only Go server (no module to download), a Rack app whose gem comes vendored in
// vendor/cache (Rack and Puma from Debian's packages), and apps with only a Procfile and no
// package manifest: a stdlib Python server, a Perl server (a runtime nothing detects), and a
// Node script without package.json.

const docker = new Docker()
let t: TestPlatform
let tmp: string
let key: string
const { miosa, json } = cliAs(() => ({ apiUrl: t.apiUrl, key: key, home: tmp }))

async function writeApp(name: string, files: Record<string, string | Buffer>): Promise<string> {
  const root = join(tmp, name)
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true })
    await writeFile(join(root, path), content)
  }
  return root
}

/** A gem file as `gem build` writes it: a plain tar of its gzipped spec (YAML) and gzipped files. */
async function gemFile(name: string, version: string, files: Record<string, string>): Promise<Buffer> {
  const spec = [
    '--- !ruby/object:Gem::Specification',
    `name: ${name}`,
    'version: !ruby/object:Gem::Version',
    `  version: ${version}`,
    'platform: ruby',
    'authors:',
    '- miosa',
    'bindir: bin',
    'dependencies: []',
    'files:',
    ...Object.keys(files).map((f) => `- ${f}`),
    'require_paths:',
    '- lib',
    'rubygems_version: 3.3.15',
    'specification_version: 4',
    `summary: ${name}`,
    '',
  ].join('\n')
  const dir = await mkdtemp(join(tmp, 'gem-'))
  const data = join(dir, 'data')
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(data, path)), { recursive: true })
    await writeFile(join(data, path), content)
  }
  await create({ cwd: data, gzip: true, portable: true, file: join(dir, 'data.tar.gz') }, Object.keys(files))
  await writeFile(join(dir, 'metadata.gz'), gzipSync(spec))
  const chunks: Buffer[] = []
  for await (const chunk of create({ cwd: dir, portable: true }, ['metadata.gz', 'data.tar.gz']) as AsyncIterable<Buffer>) chunks.push(chunk)
  return Buffer.concat(chunks)
}

/** Plans, publishes and GETs the app through the edge; answers the plan, the version and the body. */
async function publish(name: string, dir: string): Promise<{ plan: any; version: any; body: string }> {
  const planned = await json(['deploy', dir, '--name', name, '--plan'])
  const version = await json(['deploy', dir, '--name', name])
  expect(version, JSON.stringify(version)).toMatchObject({ status: 'ready', release_kind: 'dynamic' })
  const deployment = await json(['deployments', 'get', name])
  const answer = await getViaEdge(t, deployment.url)
  if (answer.status !== 200) console.log(JSON.stringify(await json(['instances', 'list', name]), null, 1), (await miosa(['logs', name])).stdout)
  expect(answer.status, answer.body).toBe(200)
  return { plan: planned.plan, version, body: answer.body }
}

/** The image the deployment's instance runs, inspected. */
async function instanceImage(deploymentId: string) {
  const [container] = await docker.listContainers({ filters: { label: [`miosa.deployment_id=${deploymentId}`, `miosa.platform=${t.platformId}`, 'miosa.kind=instance'] } })
  expect(container).toBeDefined()
  return docker.getImage(container?.ImageID ?? '').inspect()
}

beforeAll(async () => {
  // The sandbox reconciler's network prune is kept out of the way: these builds run in a
  // workspace without sandboxes (builds holding their network are tested on their own).
  t = await startTestPlatform({ instanceReconcileIntervalMs: 250, reconcileIntervalMs: 3_600_000 })
  key = (await t.newOrganization('Languages Org')).key
  tmp = await mkdtemp(join(tmpdir(), 'miosa-cli-languages-'))
}, 60_000)

afterAll(async () => {
  await t?.close()
  if (tmp !== undefined) await rm(tmp, { recursive: true, force: true })
}, 120_000)

describe.sequential('common app shapes through the CLI', () => {
  it('a stdlib Go server: go build in the go template, a release of the binary alone on the Debian base', async () => {
    const dir = await writeApp('go-app', {
      'go.mod': 'module example.com/hello\n\ngo 1.19\n',
      'main.go': [
        'package main',
        '',
        'import (',
        '\t"fmt"',
        '\t"net/http"',
        '\t"os"',
        ')',
        '',
        'func main() {',
        '\thttp.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {',
        '\t\tfmt.Fprintf(w, "go v%s on %s", os.Getenv("MIOSA_VERSION"), os.Getenv("PORT"))',
        '\t})',
        '\tif err := http.ListenAndServe(":"+os.Getenv("PORT"), nil); err != nil {',
        '\t\tpanic(err)',
        '\t}',
        '}',
        '',
      ].join('\n'),
    })
    const { plan, version, body } = await publish('go-app', dir)
    expect(plan).toMatchObject({ kind: 'dynamic', detected: 'go', build: ['go', 'build', '-o', 'app', '.'], start: ['./app'] })
    expect(plan.reasons.join('\n')).toContain('the release holds the binary alone')
    expect(body).toBe('go v1 on 8080')
    // The toolchain stayed in the build stage: the release is the base plus one small binary.
    const image = await instanceImage(version.deployment_id)
    const template = await docker.getImage('miosa/template-go:latest').inspect()
    console.log(`Go release: ${(image.Size / 1e6).toFixed(1)} MB (the go template: ${(template.Size / 1e6).toFixed(1)} MB)`)
    expect(image.Size).toBeLessThan(250e6)
    expect(image.Size).toBeLessThan(template.Size / 3)
  }, 600_000)

  it('a Rack app with a gem vendored in vendor/cache, Rack and Puma from Debian', async () => {
    const dir = await writeApp('rack-app', {
      Gemfile: "source 'https://rubygems.org'\ngem 'rack'\ngem 'greeting'\n",
      'config.ru': "require 'greeting'\nrun ->(env) { [200, { 'content-type' => 'text/plain' }, [Greeting.text(ENV['MIOSA_VERSION'], ENV['PORT'])]] }\n",
      'vendor/cache/greeting-1.0.0.gem': await gemFile('greeting', '1.0.0', {
        'lib/greeting.rb': 'module Greeting\n  def self.text(version, port) = "rack v#{version} on #{port} with a vendored gem"\nend\n',
      }),
    })
    const { plan, version, body } = await publish('rack-app', dir)
    expect(plan).toMatchObject({ kind: 'dynamic', detected: 'ruby', install: ['bundle', 'install', '--local', '--no-cache'], start: ['sh', '-lc', 'puma -b tcp://0.0.0.0:$PORT config.ru'] })
    expect(body).toBe('rack v1 on 8080 with a vendored gem')
    const image = await instanceImage(version.deployment_id)
    console.log(`Ruby release: ${(image.Size / 1e6).toFixed(1)} MB`)
    expect(image.Config.Env).toEqual(expect.arrayContaining(['PORT=8080', 'RACK_ENV=production']))
  }, 600_000)

  it('a stdlib Python server with only a Procfile', async () => {
    const dir = await writeApp('py-app', {
      Procfile: 'web: python3 server.py\n',
      'server.py': [
        'import os',
        'from http.server import BaseHTTPRequestHandler, HTTPServer',
        '',
        'class Handler(BaseHTTPRequestHandler):',
        '    def do_GET(self):',
        "        body = f\"python v{os.environ['MIOSA_VERSION']} on {os.environ['PORT']}\".encode()",
        '        self.send_response(200)',
        "        self.send_header('content-length', str(len(body)))",
        '        self.end_headers()',
        '        self.wfile.write(body)',
        '',
        "HTTPServer(('0.0.0.0', int(os.environ['PORT'])), Handler).serve_forever()",
        '',
      ].join('\n'),
    })
    const { plan, body } = await publish('py-app', dir)
    expect(plan).toMatchObject({ kind: 'dynamic', detected: 'python', install: null, start: ['sh', '-lc', 'python3 server.py'] })
    expect(plan.reasons[0]).toMatch(/a Procfile without a package manifest/)
    expect(body).toBe('python v1 on 8080')
  }, 600_000)

  it('a Procfile whose command names no runtime: a Perl server runs in the miosa-sandbox template', async () => {
    const dir = await writeApp('perl-app', {
      Procfile: 'web: perl server.pl\n',
      'server.pl': [
        'use IO::Socket::INET;',
        "$SIG{PIPE} = 'IGNORE';",
        'my $server = IO::Socket::INET->new(LocalAddr => "0.0.0.0:$ENV{PORT}", Listen => 16, ReuseAddr => 1) or die "listen: $!";',
        'while (my $client = $server->accept) {',
        '  while (my $line = <$client>) { last if $line eq "\\r\\n" }',
        '  my $body = "perl v$ENV{MIOSA_VERSION} on $ENV{PORT}";',
        '  print $client "HTTP/1.1 200 OK\\r\\nContent-Length: " . length($body) . "\\r\\nConnection: close\\r\\n\\r\\n$body";',
        '  close $client;',
        '}',
        '',
      ].join('\n'),
    })
    const { plan, body } = await publish('perl-app', dir)
    expect(plan).toMatchObject({ kind: 'dynamic', detected: 'static-files', install: null, start: ['sh', '-lc', 'perl server.pl'] })
    expect(plan.reasons.join('\n')).toContain('in the miosa-sandbox template')
    expect(body).toBe('perl v1 on 8080')
  }, 600_000)

  it('a Node script with only a Procfile, no package.json', async () => {
    const dir = await writeApp('node-script', {
      Procfile: 'web: node server.js\n',
      'server.js': "require('node:http').createServer((req, res) => res.end(`node v${process.env.MIOSA_VERSION} on ${process.env.PORT}`)).listen(Number(process.env.PORT))\n",
    })
    const { plan, body } = await publish('node-script', dir)
    expect(plan).toMatchObject({ kind: 'dynamic', detected: 'node', install: null, start: ['sh', '-lc', 'node server.js'] })
    expect(body).toBe('node v1 on 8080')
  }, 600_000)
})
