import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cliAs } from '../helpers/cli.js'
import { getViaEdge, writeWorkspace } from '../helpers/e2e.js'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'

// Dynamic apps as a user ships them, with the real `miosa` bin against a real platform on
// the real Docker Engine: a Flask app (its dependency from Debian's packages, no package
// index) published from a python sandbox, and a Dockerfile app from a node sandbox, each
// served at its URL; then instances list, scale, restart and runtime logs.

let t: TestPlatform
let tmp: string
let key: string
const { miosa, json } = cliAs(() => ({ apiUrl: t.apiUrl, key: key, home: tmp }))

const fetchLive = (url: string) => getViaEdge(t, url)
const writeFiles = (sandboxId: string, files: Record<string, string>) => writeWorkspace(t, key, sandboxId, files)

beforeAll(async () => {
  t = await startTestPlatform({ instanceReconcileIntervalMs: 250 })
  key = (await t.newOrganization('Dynamic CLI Org')).key
  tmp = await mkdtemp(join(tmpdir(), 'miosa-cli-dynamic-'))
}, 60_000)

afterAll(async () => {
  await t?.close()
  if (tmp !== undefined) await rm(tmp, { recursive: true, force: true })
}, 120_000)

describe.sequential('dynamic apps through the CLI', () => {
  let flask: any

  it('publishes a Flask app from a python sandbox: gunicorn serves it, with no package index', async () => {
    const sandbox = await json(['sandbox', 'create', '--template', 'python', '--name', 'flask-dev', '--timeout', '1h', '--wait'])
    await writeFiles(sandbox.id, {
      'requirements.txt': 'flask\n',
      'app.py': [
        'import os',
        'from flask import Flask',
        'app = Flask(__name__)',
        '',
        "@app.route('/')",
        'def index():',
        "    return f\"flask v{os.environ['MIOSA_VERSION']} on {os.environ['PORT']}\"",
        '',
      ].join('\n'),
    })
    const plan = await json(['deploy', '--sandbox', sandbox.id, '--name', 'flask-app', '--plan'])
    expect(plan.plan).toMatchObject({ kind: 'dynamic', detected: 'python' })
    expect(plan.plan.start.join(' ')).toContain('gunicorn')
    const deployed = await json(['deploy', '--sandbox', sandbox.id, '--name', 'flask-app'])
    expect(deployed, JSON.stringify(deployed)).toMatchObject({ status: 'ready', release_kind: 'dynamic' })
    flask = await json(['deployments', 'get', 'flask-app'])
    expect(await fetchLive(flask.url)).toMatchObject({ status: 200, body: 'flask v1 on 8080' })
  }, 400_000)

  it('publishes a Dockerfile app from a node sandbox, built FROM a local template image', async () => {
    const sandbox = await json(['sandbox', 'create', '--template', 'node', '--name', 'docker-dev', '--timeout', '1h', '--wait'])
    await writeFiles(sandbox.id, {
      Dockerfile: 'FROM miosa/template-node\nWORKDIR /srv\nCOPY server.js .\nCMD ["node", "/srv/server.js"]\n',
      'server.js': "require('node:http').createServer((req, res) => res.end('built from a Dockerfile')).listen(Number(process.env.PORT))\n",
    })
    const deployed = await json(['deploy', '--sandbox', sandbox.id, '--name', 'docker-app'])
    expect(deployed, JSON.stringify(deployed)).toMatchObject({ status: 'ready', release_kind: 'dynamic' })
    expect(deployed.plan).toMatchObject({ detected: 'dockerfile' })
    const app = await json(['deployments', 'get', 'docker-app'])
    expect(await fetchLive(app.url)).toMatchObject({ status: 200, body: 'built from a Dockerfile' })
  }, 400_000)

  it('lists instances, scales, restarts with fresh instances, and shows runtime logs', async () => {
    const listed = await json(['instances', 'list', 'flask-app'])
    expect(listed).toMatchObject({ environment: 'production', desired: 1 })
    expect(listed.data).toHaveLength(1)
    const first = listed.data[0].id

    const scaled = await json(['scale', 'flask-app', '--instances', '2'])
    expect(scaled.instances).toBe(2)
    await expect.poll(async () => (await json(['instances', 'list', 'flask-app'])).data.filter((i: any) => i.state === 'healthy').length, { timeout: 60_000, interval: 500 }).toBe(2)

    const restarted = await json(['restart', 'flask-app'])
    const healthy = restarted.data.filter((i: any) => i.state === 'healthy').map((i: any) => i.id)
    expect(healthy).toHaveLength(2)
    expect(healthy).not.toContain(first)
    expect(await fetchLive(flask.url)).toMatchObject({ status: 200, body: 'flask v1 on 8080' })

    // gunicorn says where it listens on stderr, with the instance and a timestamp.
    const logs = await json(['logs', 'flask-app', '--tail', '50'])
    expect(logs.lines.some((l: any) => l.stream === 'stderr' && l.line.includes('Listening at: http://0.0.0.0:8080') && l.instance_id.startsWith('inst_'))).toBe(true)
    const human = await miosa(['logs', 'flask-app'])
    expect(human.code).toBe(0)
    expect(human.stdout).toMatch(/^\S+Z inst_\S+ err \| .*Listening at/m)

    const bad = await miosa(['scale', 'flask-app', '--instances', 'many', '--json'])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toContain('--instances expects a whole number')
  }, 300_000)
})
