import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cliAs } from '../helpers/cli.js'
import { getViaEdge } from '../helpers/e2e.js'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'

// `miosa deploy <dir>` as a developer runs it from a checkout: the real bin uploads a local
// directory to a real platform, whose real builder makes an image on the real Docker Engine,
// and the app serves at its URL through the edge. The directory holds what checkouts hold:
// a node_modules (git-ignored) with a package `npm link`ed from elsewhere, a .git, and what
// its .miosaignore names (a symlinked data directory, logs). Each link points outside the
// directory, and the server refuses an archive with such a link whole: the publish only
// succeeds if the CLI left those directories out of the upload.

let t: TestPlatform
let tmp: string
let key: string
const { miosa, json } = cliAs(() => ({ apiUrl: t.apiUrl, key: key, home: tmp }))

async function writeTree(root: string, files: Record<string, string>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true })
    await writeFile(join(root, path), content)
  }
}

/** What the upload keeps, sorted: everything but node_modules, .git, uploads and *.log. */
const KEPT = ['.gitignore', '.miosaignore', 'lib/greeting.js', 'package.json', 'server.js']

beforeAll(async () => {
  t = await startTestPlatform({ instanceReconcileIntervalMs: 250 })
  key = (await t.newOrganization('Deploy Dir Org')).key
  tmp = await mkdtemp(join(tmpdir(), 'miosa-deploy-dir-'))
}, 60_000)

afterAll(async () => {
  await t?.close()
  if (tmp !== undefined) await rm(tmp, { recursive: true, force: true })
}, 120_000)

describe.sequential('miosa deploy <dir> with the real builder', () => {
  it('uploads a checkout without node_modules, .git and what .miosaignore names, builds it and serves it at its URL', async () => {
    const app = join(tmp, 'clinic-api')
    await writeTree(app, {
      'package.json': JSON.stringify({ name: 'clinic-api', private: true, scripts: { start: 'node server.js' } }),
      'server.js': [
        "const { existsSync } = require('node:fs')",
        "const { join } = require('node:path')",
        "const greeting = require('./lib/greeting.js')",
        "const here = (p) => existsSync(join(__dirname, p))",
        "require('node:http').createServer((req, res) => {",
        "  res.setHeader('content-type', 'application/json')",
        "  res.end(JSON.stringify({ greeting, uploads: here('uploads'), log: here('debug.log'), git: here('.git'), linked: here('node_modules/linked-lib') }))",
        '}).listen(Number(process.env.PORT))',
        '',
      ].join('\n'),
      'lib/greeting.js': "module.exports = 'hello from a local directory'\n",
      '.gitignore': 'node_modules/\n*.log\n',
      '.miosaignore': '# local data and logs stay on this machine\nuploads\n*.log\n',
      'debug.log': 'npm ERR! something local\n',
      'node_modules/left-pad/package.json': '{"name":"left-pad","version":"1.3.0"}',
      'node_modules/left-pad/index.js': 'module.exports = (s) => s\n',
      '.git/HEAD': 'ref: refs/heads/main\n',
      '.git/config': '[core]\n\trepositoryformatversion = 0\n',
    })
    // Links out of the directory, as `npm link` and a local data directory make them.
    const elsewhere = join(tmp, 'elsewhere')
    await mkdir(elsewhere, { recursive: true })
    await symlink(elsewhere, join(app, 'node_modules', 'linked-lib'))
    await symlink(elsewhere, join(app, 'uploads'))
    await symlink('/etc/passwd', join(app, '.git', 'passwd-link'))

    const planned = await json(['deploy', app, '--name', 'clinic-api', '--plan'])
    expect(planned.plan).toMatchObject({ kind: 'dynamic', detected: 'node' })
    expect(planned.source.files).toBe(KEPT.length)

    const deployed = await json(['deploy', app, '--name', 'clinic-api'])
    expect(deployed, JSON.stringify(deployed)).toMatchObject({ status: 'ready', release_kind: 'dynamic', version_number: 1 })
    // The version was built from exactly the source the plan saw.
    expect(deployed.source_sha256).toBe(planned.source.sha256)

    const live = await getViaEdge(t, deployed.url)
    expect(live.status, live.body).toBe(200)
    expect(JSON.parse(live.body)).toEqual({ greeting: 'hello from a local directory', uploads: false, log: false, git: false, linked: false })
  }, 400_000)

  it('publishes a plain static directory as it is, and refuses a path that is not a directory', async () => {
    const site = join(tmp, 'site')
    await writeTree(site, {
      'index.html': '<!doctype html><title>Brochure</title><h1>Smile Dental</h1>\n',
      'drafts/next.html': '<h1>not yet</h1>\n',
      '.miosaignore': 'drafts/\n',
    })
    const deployed = await json(['deploy', site, '--name', 'brochure'])
    expect(deployed, JSON.stringify(deployed)).toMatchObject({ status: 'ready', release_kind: 'static' })
    expect(await getViaEdge(t, deployed.url)).toMatchObject({ status: 200, body: expect.stringContaining('<h1>Smile Dental</h1>') })
    expect(await getViaEdge(t, deployed.url, { path: '/drafts/next.html' })).toMatchObject({ status: 404 })

    const missing = await miosa(['deploy', join(tmp, 'no-such-dir'), '--name', 'brochure', '--json'])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toContain('is not a local directory')
  }, 120_000)
})
