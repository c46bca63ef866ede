import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLI, runCli } from '../helpers/cli.js'
import type { CliResult } from '../helpers/cli.js'
import { startTestPlatform } from '../helpers/platform.js'
import { insertVersionRecord } from '../helpers/version-records.js'
import type { TestPlatform } from '../helpers/platform.js'
import { insertSandboxRecord } from '../helpers/sandbox-records.js'

// The real `miosa` bin (dist/cli/main.js) against a real listening platform.
// Every run gets MIOSA_CONFIG pointing into a temp dir: the user's own config is never read or written.

let tp: TestPlatform
let tmp: string
/** Where runs read their saved config unless a test says otherwise; never written by these tests. */
let defaultConfig: string
/** An organization for the API-talking tests, and its key. */
let org: { id: string; key: string }

interface RunOptions {
  /** MIOSA_API_KEY; omitted: none in the environment. */
  key?: string | undefined
  /** MIOSA_API_URL; null: none in the environment. Default: the test platform. */
  url?: string | null
  config?: string
  stdin?: string
}

function miosa(args: string[], o: RunOptions = {}): Promise<CliResult> {
  return runCli(args, {
    env: {
      MIOSA_CONFIG: o.config ?? defaultConfig,
      MIOSA_API_URL: o.url === null ? undefined : (o.url ?? tp.apiUrl),
      MIOSA_API_KEY: o.key,
      XDG_CONFIG_HOME: tmp, // belt and braces: nothing lands in the real ~/.config
    },
    ...(o.stdin === undefined ? {} : { stdin: o.stdin }),
  })
}

/** Runs with --json; it must succeed with exactly one JSON document on stdout and nothing on stderr. */
async function json(args: string[], o: RunOptions = {}): Promise<any> {
  const r = await miosa([...args, '--json'], o)
  expect(r.code, `miosa ${args.join(' ')} --json\n${r.stderr}`).toBe(0)
  expect(r.stderr).toBe('')
  return JSON.parse(r.stdout)
}

/** Runs a command that must fail: exit 1, nothing on stdout. */
async function fails(args: string[], o: RunOptions = {}): Promise<string> {
  const r = await miosa(args, o)
  expect(r.code, `miosa ${args.join(' ')} should fail; stdout: ${r.stdout}`).toBe(1)
  expect(r.stdout).toBe('')
  expect(r.stderr).not.toBe('')
  return r.stderr
}

/** A --json failure: stderr is one JSON document `{"error":{"code","message"}}`. */
async function failsJson(args: string[], o: RunOptions = {}): Promise<{ code: string; message: string }> {
  const stderr = await fails([...args, '--json'], o)
  let parsed: { error?: { code?: unknown; message?: unknown } }
  try {
    parsed = JSON.parse(stderr)
  } catch {
    throw new Error(`stderr of miosa ${args.join(' ')} --json is not JSON:\n${stderr}`)
  }
  expect(typeof parsed.error?.code).toBe('string')
  expect(typeof parsed.error?.message).toBe('string')
  return parsed.error as { code: string; message: string }
}

/** Runs independent commands a few at a time: spawns are the slow part. */
async function inParallel<T, R>(items: readonly T[], fn: (item: T) => Promise<R>, width = 4): Promise<R[]> {
  const out: R[] = Array.from({ length: items.length })
  let next = 0
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const i = next++
        out[i] = await fn(items[i] as T)
      }
    }),
  )
  return out
}

const tag = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`

beforeAll(async () => {
  expect(existsSync(CLI), `${CLI} is missing: run \`npm run build\` first`).toBe(true)
  // No periodic reconcile: it would mark the container-less sandbox records of the preview tests as failed.
  tp = await startTestPlatform({ reconcileIntervalMs: 3_600_000 })
  tmp = await mkdtemp(join(tmpdir(), 'miosa-cli-test-'))
  defaultConfig = join(tmp, 'never-written', 'config.json')
  org = await tp.newOrganization('CLI test org')
})

afterAll(async () => {
  await tp?.close()
  if (tmp !== undefined) await rm(tmp, { recursive: true, force: true })
})

/** Names listed under "Commands:" in a help text (aliases and the `help` command dropped). */
function commandsIn(help: string): string[] {
  // The section ends at the first blank line (help text added after it, such as examples, is not a command).
  const section = (help.split(/^Commands:$/m)[1] ?? '').split(/\n\s*\n/)[0] ?? ''
  return [...section.matchAll(/^ {2}([a-z][\w-]*)(?:\|[\w-]+)?(?= |$)/gm)]
    .map((m) => m[1] as string)
    .filter((name) => name !== 'help')
}

/** The description commander prints between the usage line and the options. */
function descriptionIn(help: string): string | undefined {
  return help.match(/^Usage: [^\n]+\n\n([^\n]+)\n/)?.[1]
}

describe('help', () => {
  const NOUNS: Record<string, string[]> = {
    server: [],
    login: [],
    logout: [],
    whoami: [],
    organizations: ['create', 'list', 'get', 'create-key'],
    'api-keys': ['create', 'list', 'get', 'revoke'],
    workspaces: ['create', 'list', 'get', 'update', 'delete'],
    projects: ['create', 'list', 'get', 'update', 'delete'],
    sandbox: [
      'create', 'list', 'get', 'update', 'exec', 'write-file', 'read-file', 'ls', 'stat', 'mkdir', 'mv', 'rm', 'upload', 'download',
      'terminal', 'stop', 'resume', 'keep-alive', 'snapshot', 'snapshots', 'services', 'fork', 'destroy',
    ],
    templates: ['list', 'build'],
    preview: ['url'],
    'preview-token': ['create', 'list', 'revoke'],
    share: ['create', 'list', 'revoke'],
    tenant: ['branding', 'preview-domain'],
    deploy: [],
    deployments: ['list', 'get'],
    versions: ['list', 'get'],
    rollback: [],
    promote: [],
    logs: [],
    instances: ['list'],
    scale: [],
    restart: [],
    env: ['set', 'list', 'unset'],
    admin: ['rotate-master-key'],
    environments: ['list', 'create', 'delete'],
    limits: ['set'],
  }
  /** Groups below a noun, and their subcommands. */
  const GROUPS: Record<string, string[]> = {
    'sandbox snapshots': ['list', 'get', 'delete'],
    'sandbox services': ['list', 'remove'],
    'tenant branding': ['set', 'get'],
    'tenant preview-domain': ['set', 'get', 'verify', 'delete'],
  }

  it('parses commander help the way the walk below relies on', () => {
    const sample = [
      'Usage: miosa [options] [command]',
      '',
      'the description',
      '',
      'Commands:',
      '  server [options]    run it,',
      '                      wrapped onto a second line',
      '  organizations|orgs  manage',
      '  api-keys',
      '  help [command]      display help',
      '',
      'Examples:',
      '  miosa server --data-dir /srv    start',
    ].join('\n')
    expect(commandsIn(sample)).toEqual(['server', 'organizations', 'api-keys'])
    expect(descriptionIn(sample)).toBe('the description')
  })

  it('`miosa --help` lists every command; every command and subcommand has help, a description and --json', async () => {
    const top = await miosa(['--help'])
    expect(top.code).toBe(0)
    expect(top.stderr).toBe('')
    const nouns = commandsIn(top.stdout)
    expect(nouns.toSorted()).toEqual(Object.keys(NOUNS).toSorted())

    const nounHelps = await inParallel(nouns, (noun) => miosa([noun, '--help']))
    const leaves: string[][] = []
    nouns.forEach((noun, i) => {
      const r = nounHelps[i] as CliResult
      expect(r.code, `${noun} --help`).toBe(0)
      expect(descriptionIn(r.stdout)?.length ?? 0, `${noun} --help has a description`).toBeGreaterThan(5)
      const subs = commandsIn(r.stdout)
      expect(subs.toSorted(), `subcommands of ${noun}`).toEqual((NOUNS[noun] ?? []).toSorted())
      if (subs.length === 0) leaves.push([noun])
      else for (const sub of subs) if (GROUPS[`${noun} ${sub}`] === undefined) leaves.push([noun, sub])
    })
    for (const [group, expected] of Object.entries(GROUPS)) {
      const r = await miosa([...group.split(' '), '--help'])
      expect(r.code, `${group} --help`).toBe(0)
      expect(commandsIn(r.stdout).toSorted(), `subcommands of ${group}`).toEqual(expected.toSorted())
      for (const sub of expected) leaves.push([...group.split(' '), sub])
    }
    expect(leaves).toHaveLength(82)

    // A leaf already walked (server, login, ...) has its help in hand; the rest are fetched.
    const leafHelps = await inParallel(leaves, (path) =>
      path.length === 1 ? Promise.resolve(nounHelps[nouns.indexOf(path[0] as string)] as CliResult) : miosa([...path, '--help']),
    )
    leaves.forEach((path, i) => {
      const r = leafHelps[i] as CliResult
      const name = path.join(' ')
      expect(r.code, `${name} --help`).toBe(0)
      expect(r.stdout).toContain(`Usage: miosa ${path[0]}`)
      expect(descriptionIn(r.stdout)?.length ?? 0, `${name} --help has a description`).toBeGreaterThan(5)
      expect(r.stdout, `${name} has --json`).toMatch(/^ {2}--json\b/m)
    })
    // About a hundred CLI processes: well over the default timeout on a busy machine.
  }, 180_000)
})

describe('--json with the root key', () => {
  it('organizations create / list / get / create-key', async () => {
    const slug = tag('clinic')
    const user = tag('acct')
    const created = await json(
      ['organizations', 'create', 'Clinic IQ', '--slug', slug, '--external-user-id', user, '--metadata', 'plan=pro', '--metadata', 'note=a=b'],
      { key: tp.rootKey },
    )
    expect(created.id).toMatch(/^org_/)
    expect(created.name).toBe('Clinic IQ')
    expect(created.slug).toBe(slug)
    expect(created.external_user_id).toBe(user)
    expect(created.metadata).toEqual({ plan: 'pro', note: 'a=b' })

    const [listed, got, key] = await Promise.all([
      json(['organizations', 'list', '--external-user-id', user], { key: tp.rootKey }),
      json(['orgs', 'get', created.id], { key: tp.rootKey }),
      json(['organizations', 'create-key', created.id, '--name', 'backend'], { key: tp.rootKey }),
    ])
    expect(listed.data.map((o: { id: string }) => o.id)).toEqual([created.id])
    expect(listed.next_cursor).toBeNull()
    expect(got).toEqual(created)
    expect(key.key).toMatch(/^msk_/)
    expect(key.id).toMatch(/^key_/)
    expect(key.organization_id).toBe(created.id)
    expect(key.name).toBe('backend')
    expect(key).not.toHaveProperty('hash')

    // The minted key is an organization key of that organization.
    const who = await json(['whoami'], { key: key.key })
    expect(who.kind).toBe('organization')
    expect(who.organization.id).toBe(created.id)
    expect(who.api_key_id).toBe(key.id)
    expect(who.api_url).toBe(tp.apiUrl)
  })

  it('organizations list --all merges pages', async () => {
    const user = tag('paged')
    const ids: string[] = []
    for (let i = 0; i < 3; i++) ids.push((await json(['organizations', 'create', `Paged ${i}`, '--external-user-id', user], { key: tp.rootKey })).id)
    const [one, all] = await Promise.all([
      json(['organizations', 'list', '--external-user-id', user, '--limit', '1'], { key: tp.rootKey }),
      json(['organizations', 'list', '--external-user-id', user, '--limit', '1', '--all'], { key: tp.rootKey }),
    ])
    expect(one.data).toHaveLength(1)
    expect(one.next_cursor).toEqual(expect.any(String))
    expect(all.data.map((o: { id: string }) => o.id).toSorted()).toEqual(ids.toSorted())
    expect(all.next_cursor).toBeNull()
  })

  it('whoami with the root key', async () => {
    const who = await json(['whoami'], { key: tp.rootKey })
    expect(who).toEqual({ api_url: tp.apiUrl, kind: 'root', organization: null, api_key_id: null })
  })
})

describe('--json with an organization key', () => {
  it('workspaces create / list / get / update / delete', async () => {
    const slug = tag('acme')
    const client = tag('client')
    const ws = await json(
      ['workspaces', 'create', 'Acme', '--slug', slug, '--external-workspace-id', client, '--external-user-id', 'u_1', '--metadata', 'tier=gold', '--metadata', 'plan=pro'],
      { key: org.key },
    )
    expect(ws.id).toMatch(/^ws_/)
    expect(ws.organization_id).toBe(org.id)
    expect(ws.slug).toBe(slug)
    expect(ws.name).toBe('Acme')
    expect(ws.external_workspace_id).toBe(client)
    expect(ws.external_user_id).toBe('u_1')
    expect(ws.metadata).toEqual({ tier: 'gold', plan: 'pro' })

    const [got, byExternal, byMetadata] = await Promise.all([
      json(['workspaces', 'get', ws.id], { key: org.key }),
      json(['ws', 'list', '--external-workspace-id', client], { key: org.key }),
      json(['workspaces', 'list', '--metadata', 'tier=gold', '--metadata', 'plan=pro'], { key: org.key }),
    ])
    expect(got).toEqual(ws)
    expect(byExternal).toEqual({ data: [ws], next_cursor: null })
    expect(byMetadata.data.map((w: { id: string }) => w.id)).toContain(ws.id)

    const updated = await json(['workspaces', 'update', ws.id, '--name', 'Acme Dental', '--metadata', 'tier=platinum'], { key: org.key })
    expect(updated.id).toBe(ws.id)
    expect(updated.name).toBe('Acme Dental')
    expect(updated.slug).toBe(slug)
    expect(updated.metadata).toEqual({ tier: 'platinum' })
    expect(updated.external_workspace_id).toBe(client)

    expect(await json(['workspaces', 'delete', ws.id], { key: org.key })).toEqual({ id: ws.id, deleted: true })
    const gone = await failsJson(['workspaces', 'get', ws.id], { key: org.key })
    expect(gone.code).toBe('not_found')
  })

  it('projects create / list / get / update / delete', async () => {
    const [wsA, wsB] = await Promise.all([
      json(['workspaces', 'create', tag('proj-a')], { key: org.key }),
      json(['workspaces', 'create', tag('proj-b')], { key: org.key }),
    ])
    const doc = tag('doc')
    const p1 = await json(
      ['projects', 'create', 'Intake form', '--workspace', wsA.id, '--slug', 'intake', '--external-project-id', doc, '--metadata', 'stage=alpha'],
      { key: org.key },
    )
    expect(p1.id).toMatch(/^prj_/)
    expect(p1.workspace_id).toBe(wsA.id)
    expect(p1.organization_id).toBe(org.id)
    expect(p1.slug).toBe('intake')
    expect(p1.external_project_id).toBe(doc)
    expect(p1.metadata).toEqual({ stage: 'alpha' })
    const [p2, p3] = await Promise.all([
      json(['projects', 'create', 'Booking', '--workspace', wsA.id], { key: org.key }),
      json(['projects', 'create', 'Other', '--workspace', wsB.id], { key: org.key }),
    ])
    expect(p2.slug).toBe('booking')

    const [inA, inB, byDoc, got] = await Promise.all([
      json(['projects', 'list', '--workspace', wsA.id], { key: org.key }),
      json(['projects', 'list', '--workspace', wsB.id], { key: org.key }),
      json(['projects', 'list', '--external-project-id', doc], { key: org.key }),
      json(['projects', 'get', p1.id], { key: org.key }),
    ])
    expect(inA.data.map((p: { id: string }) => p.id).toSorted()).toEqual([p1.id, p2.id].toSorted())
    expect(inB.data.map((p: { id: string }) => p.id)).toEqual([p3.id])
    expect(byDoc.data).toEqual([p1])
    expect(got).toEqual(p1)

    const updated = await json(['projects', 'update', p1.id, '--name', 'Intake v2', '--metadata', 'stage=beta', '--external-user-id', 'u_9'], {
      key: org.key,
    })
    expect(updated.name).toBe('Intake v2')
    expect(updated.slug).toBe('intake')
    expect(updated.metadata).toEqual({ stage: 'beta' })
    expect(updated.external_user_id).toBe('u_9')
    expect(updated.external_project_id).toBe(doc)

    // A workspace that still holds projects is not deleted.
    const conflict = await failsJson(['workspaces', 'delete', wsB.id], { key: org.key })
    expect(conflict.code).toBe('conflict')

    expect(await json(['projects', 'delete', p3.id], { key: org.key })).toEqual({ id: p3.id, deleted: true })
    expect((await json(['projects', 'list', '--workspace', wsB.id], { key: org.key })).data).toEqual([])
    expect(await json(['workspaces', 'delete', wsB.id], { key: org.key })).toEqual({ id: wsB.id, deleted: true })
  })

  it('workspaces and projects list --all merge pages', async () => {
    const batch = tag('batch')
    const ws = await json(['workspaces', 'create', 'Batch home', '--metadata', `batch=${batch}`], { key: org.key })
    const wsIds = [ws.id as string]
    const prjIds: string[] = []
    for (let i = 0; i < 2; i++) {
      wsIds.push((await json(['workspaces', 'create', `Batch ${i}`, '--metadata', `batch=${batch}`], { key: org.key })).id)
    }
    for (let i = 0; i < 3; i++) prjIds.push((await json(['projects', 'create', `App ${i}`, '--workspace', ws.id], { key: org.key })).id)

    const [wsOne, wsAll, prjAll] = await Promise.all([
      json(['workspaces', 'list', '--metadata', `batch=${batch}`, '--limit', '1'], { key: org.key }),
      json(['workspaces', 'list', '--metadata', `batch=${batch}`, '--limit', '1', '--all'], { key: org.key }),
      json(['projects', 'list', '--workspace', ws.id, '--limit', '1', '--all'], { key: org.key }),
    ])
    expect(wsOne.data).toHaveLength(1)
    expect(wsOne.next_cursor).toEqual(expect.any(String))
    expect(wsAll.data.map((w: { id: string }) => w.id).toSorted()).toEqual(wsIds.toSorted())
    expect(wsAll.next_cursor).toBeNull()
    expect(prjAll.data.map((p: { id: string }) => p.id).toSorted()).toEqual(prjIds.toSorted())
    expect(prjAll.next_cursor).toBeNull()

    // --cursor continues where a page stopped.
    const second = await json(['workspaces', 'list', '--metadata', `batch=${batch}`, '--limit', '1', '--cursor', wsOne.next_cursor], { key: org.key })
    expect(second.data).toHaveLength(1)
    expect(second.data[0].id).not.toBe(wsOne.data[0].id)
  })

  it('api-keys create / list / get / revoke', async () => {
    const created = await json(['api-keys', 'create', '--name', 'ci'], { key: org.key })
    expect(created.key).toMatch(/^msk_/)
    expect(created.id).toMatch(/^key_/)
    expect(created.name).toBe('ci')
    expect(created.organization_id).toBe(org.id)
    expect(created.revoked_at).toBeNull()

    const [listed, got, who] = await Promise.all([
      json(['api-keys', 'list'], { key: org.key }),
      json(['api-keys', 'get', created.id], { key: org.key }),
      json(['whoami'], { key: created.key }),
    ])
    expect(listed.data.map((k: { id: string }) => k.id)).toContain(created.id)
    expect(JSON.stringify(listed)).not.toContain(created.key)
    for (const k of listed.data) {
      expect(k).not.toHaveProperty('key')
      expect(k).not.toHaveProperty('hash')
    }
    expect(got.id).toBe(created.id)
    expect(got.prefix).toBe(created.prefix)
    expect(got).not.toHaveProperty('key')
    expect(got).not.toHaveProperty('hash')
    expect(who.api_key_id).toBe(created.id)

    const revoked = await json(['api-keys', 'revoke', created.id], { key: org.key })
    expect(revoked.id).toBe(created.id)
    expect(revoked.revoked_at).toEqual(expect.any(String))
    expect(revoked).not.toHaveProperty('key')

    const refused = await failsJson(['whoami'], { key: created.key })
    expect(refused.code).toBe('unauthenticated')
  })
})

describe('--json: previews and their access', () => {
  it('preview url, sandbox update, preview-token create / list / revoke, share create / list / revoke', async () => {
    const ws = await json(['workspaces', 'create', tag('Previews')], { key: org.key })
    const box = await insertSandboxRecord(tp.platform.store, { organization_id: org.id, workspace_id: ws.id })
    const edgePort = new URL(tp.edgeUrl).port

    const url = await json(['preview', 'url', box.id, '--port', '5173'], { key: org.key })
    expect(url).toEqual({ url: `http://5173-${box.slug}.sandbox.localhost:${edgePort}`, port: 5173, public: false })
    const made = await json(['sandbox', 'update', box.id, '--preview-public', 'true'], { key: org.key })
    expect(made.preview_public).toBe(true)
    expect(made.previews).toEqual({ '3000': `http://3000-${box.slug}.sandbox.localhost:${edgePort}` })
    expect((await json(['preview', 'url', box.id], { key: org.key })).public).toBe(true)

    const token = await json(['preview-token', 'create', box.id, '--ttl', '1h', '--port', '3000'], { key: org.key })
    expect(token.token).toMatch(/^mp_/)
    expect(token.url).toBe(`http://3000-${box.slug}.sandbox.localhost:${edgePort}/?token=${token.token}`)
    expect(Date.parse(token.expires_at) - Date.now()).toBeGreaterThan(3590_000)
    const tokens = await json(['preview-token', 'list', box.id], { key: org.key })
    expect(tokens.data.map((x: { id: string }) => x.id)).toEqual([token.id])
    expect(JSON.stringify(tokens)).not.toContain(token.token)
    expect((await json(['preview-token', 'revoke', token.id], { key: org.key })).revoked_at).toEqual(expect.any(String))
    const tooLong = await failsJson(['preview-token', 'create', box.id, '--ttl', '25h'], { key: org.key })
    expect(tooLong.message).toMatch(/ttl_seconds/)
    expect((await failsJson(['preview-token', 'create', box.id], { key: org.key })).message).toMatch(/--ttl/)

    const share = await json(['share', 'create', box.id, '--password', 'a long password', '--expires-at', '7d', '--name', 'Review'], { key: org.key })
    expect(share).toMatchObject({ name: 'Review', has_password: true, port: null })
    expect(share.token).toMatch(/^ms_/)
    expect(Date.parse(share.expires_at) - Date.now()).toBeGreaterThan(7 * 86_400_000 - 60_000)
    const shares = await json(['share', 'list', box.id], { key: org.key })
    expect(shares.data.map((x: { id: string }) => x.id)).toEqual([share.id])
    expect(JSON.stringify(shares)).not.toContain(share.token)
    expect((await json(['share', 'revoke', share.id], { key: org.key })).revoked_at).toEqual(expect.any(String))
  })

  it('tenant branding set / get, preview-domain set / get / verify / delete', async () => {
    const ws = await json(['workspaces', 'create', tag('Tenant')], { key: org.key })
    const set = await json(
      ['tenant', 'branding', 'set', '--workspace', ws.id, '--logo-url', 'https://cdn.example.com/l.svg', '--accent-color', '#0f766e', '--support-url', 'https://example.com/help'],
      { key: org.key },
    )
    expect(set).toMatchObject({ workspace_id: ws.id, logo_url: 'https://cdn.example.com/l.svg', accent_color: '#0f766e', support_url: 'https://example.com/help' })
    expect(await json(['tenant', 'branding', 'get', '--workspace', ws.id], { key: org.key })).toEqual(set)
    const http = await failsJson(['tenant', 'branding', 'set', '--workspace', ws.id, '--logo-url', 'http://x.example.com/l.png', '--accent-color', '#fff'], { key: org.key })
    expect(http.message).toMatch(/logo_url/)

    const domain = `${tag('preview')}.example.com`
    const registered = await json(['tenant', 'preview-domain', 'set', domain, '--workspace', ws.id], { key: org.key })
    expect(registered).toMatchObject({ workspace_id: ws.id, domain, verified: false, cname_target: expect.any(String) })
    expect(await json(['tenant', 'preview-domain', 'get', '--workspace', ws.id], { key: org.key })).toEqual(registered)
    // No DNS server answers for it here: the verification fails, saying why.
    const unverified = await failsJson(['tenant', 'preview-domain', 'verify', '--workspace', ws.id], { key: org.key })
    expect(['conflict', 'unavailable']).toContain(unverified.code)
    expect(unverified.message).toContain(domain)
    expect((await json(['tenant', 'preview-domain', 'delete', '--workspace', ws.id], { key: org.key })).domain).toBeNull()
  })
})

describe('--json: deployments, versions, rollback, promote, logs', () => {
  it('deploy refuses a sandbox it cannot capture; deployments list / get (id or slug); versions list / get; rollback; promote; logs', async () => {
    const ws = await json(['workspaces', 'create', 'Deploy WS'], { key: org.key })
    const box = await insertSandboxRecord(tp.platform.store, { organization_id: org.id, workspace_id: ws.id })
    // A sandbox record with no container: its workspace cannot be captured, the publish is
    // refused, and nothing is made (the list below holds only the deployment made next).
    const refused = await failsJson(['deploy', '--sandbox', box.id, '--name', 'cli-app', '--workspace', ws.id], { key: org.key })
    expect(refused.code).toMatch(/^(not_found|conflict)$/)
    const neither = await failsJson(['deploy', '--name', 'cli-app'], { key: org.key })
    expect(neither.message).toMatch(/--sandbox/)

    // Versions written straight into the store stand in for builds.
    const dep = await tp.platform.services.deployments.create(org.id, { name: 'CLI App', workspace_id: ws.id })
    const built = { source_sha256: null, release_sha256: 'f'.repeat(64), logs: 'built fine\n', created_by: 'key_cli' }
    const v1 = await insertVersionRecord(tp.platform.store, dep, built)
    const v2 = await insertVersionRecord(tp.platform.store, dep, built)

    const [listed, bySlug, byId] = await Promise.all([
      json(['deployments', 'list', '--workspace', ws.id], { key: org.key }),
      json(['deployments', 'get', 'cli-app'], { key: org.key }),
      json(['deployments', 'get', dep.id], { key: org.key }),
    ])
    expect(listed.data.map((d: { id: string }) => d.id)).toEqual([dep.id])
    expect(bySlug).toEqual(byId)
    expect(byId.url).toBe(dep.url)

    const versions = await json(['versions', 'list', 'cli-app'], { key: org.key })
    expect(versions.data.map((v: { version_number: number }) => v.version_number)).toEqual([2, 1])
    expect((await json(['versions', 'get', 'cli-app', '1'], { key: org.key })).id).toBe(v1.id)
    expect((await json(['versions', 'get', v2.id], { key: org.key })).version_number).toBe(2)

    const promoted = await json(['promote', 'cli-app', '--version', '2', '--env', 'production'], { key: org.key })
    expect(promoted.change).toMatchObject({ reason: 'promote', to_version_id: v2.id, from_version_id: null })
    const rolled = await json(['rollback', dep.id, '--to', '1'], { key: org.key })
    expect(rolled.change).toMatchObject({ reason: 'rollback', to_version_id: v1.id, from_version_id: v2.id })
    expect(rolled.deployment.active_version_id).toBe(v1.id)
    const badTo = await failsJson(['rollback', 'cli-app', '--to', 'latest'], { key: org.key })
    expect(badTo.message).toContain('--to')

    expect(await json(['logs', v1.id], { key: org.key })).toEqual({ version_id: v1.id, logs: 'built fine\n' })
    expect(await json(['logs', v1.id, '--follow'], { key: org.key })).toEqual({ version_id: v1.id, logs: 'built fine\n', status: 'ready', error: null })
    const human = await miosa(['logs', v1.id], { key: org.key })
    expect(human.stdout).toBe('built fine\n')
  })
})

describe('human output', () => {
  it('lists are tables with a header row', async () => {
    const ws = await json(['workspaces', 'create', tag('table')], { key: org.key })
    const prj = await json(['projects', 'create', 'Table app', '--workspace', ws.id], { key: org.key })
    const [workspaces, projects, keys, orgs, paged, record] = await Promise.all([
      miosa(['workspaces', 'list'], { key: org.key }),
      miosa(['projects', 'list', '--workspace', ws.id], { key: org.key }),
      miosa(['api-keys', 'list'], { key: org.key }),
      miosa(['organizations', 'list'], { key: tp.rootKey }),
      miosa(['workspaces', 'list', '--limit', '1'], { key: org.key }),
      miosa(['workspaces', 'get', ws.id], { key: org.key }),
    ])
    for (const r of [workspaces, projects, keys, orgs, paged, record]) {
      expect(r.code, r.stderr).toBe(0)
      expect(r.stderr).toBe('')
      expect(() => JSON.parse(r.stdout)).toThrow()
    }
    const header = (r: CliResult) => r.stdout.split('\n')[0] ?? ''
    expect(header(workspaces)).toMatch(/^ID\s+SLUG\s+NAME\b/)
    expect(workspaces.stdout).toMatch(new RegExp(`^${ws.id}\\s+${ws.slug}\\s`, 'm'))
    expect(header(projects)).toMatch(/^ID\s+SLUG\s+NAME\s+WORKSPACE_ID\b/)
    expect(projects.stdout).toMatch(new RegExp(`^${prj.id}\\s+table-app\\s+Table app\\s+${ws.id}\\s`, 'm'))
    expect(header(keys)).toMatch(/^ID\s+NAME\s+PREFIX\b/)
    expect(keys.stdout).not.toContain(org.key)
    expect(header(orgs)).toMatch(/^ID\s+SLUG\s+NAME\b/)
    expect(orgs.stdout).toContain(org.id)
    expect(paged.stdout).toMatch(/more: --cursor \S+/)
    expect(record.stdout).toMatch(new RegExp(`^id\\s+${ws.id}$`, 'm'))
    expect(record.stdout).toMatch(new RegExp(`^slug\\s+${ws.slug}$`, 'm'))
  })
})

describe('login, saved config and precedence', () => {
  let config: string
  let other: { id: string; key: string }

  beforeAll(async () => {
    config = join(tmp, 'login', 'config.json')
    other = await tp.newOrganization('Other org')
  })

  it('a wrong key fails and writes no config file', async () => {
    const error = await failsJson(['login', '--url', tp.apiUrl, '--key', 'msk_wrongwrongwrongwrongwrong'], { config, url: null })
    expect(error.code).toBe('unauthenticated')
    expect(existsSync(config)).toBe(false)

    const plain = await fails(['login', '--url', tp.apiUrl, '--key', 'msk_wrongwrongwrongwrongwrong'], { config, url: null })
    expect(plain).toMatch(/invalid or revoked API key/)
    expect(existsSync(config)).toBe(false)

    // Nothing piped: no key, nothing saved.
    expect(await fails(['login', '--url', tp.apiUrl], { config, url: null, stdin: '' })).toMatch(/no API key/)
    expect(existsSync(config)).toBe(false)
  })

  it('login saves URL and key in a 0600 file; later commands use them', async () => {
    const login = await json(['login', '--url', tp.apiUrl, '--key', org.key], { config, url: null })
    expect(login.api_url).toBe(tp.apiUrl)
    expect(login.config_file).toBe(config)
    expect(login.kind).toBe('organization')
    expect(login.organization.id).toBe(org.id)

    expect((await stat(config)).mode & 0o777).toBe(0o600)
    const saved = JSON.parse(await readFile(config, 'utf8'))
    expect(saved).toEqual({ api_url: tp.apiUrl, api_key: org.key })

    // No MIOSA_API_URL, no MIOSA_API_KEY: the saved ones are used.
    const who = await json(['whoami'], { config, url: null })
    expect(who.kind).toBe('organization')
    expect(who.organization.id).toBe(org.id)
    expect(who.api_url).toBe(tp.apiUrl)
    const listed = await json(['workspaces', 'list'], { config, url: null })
    expect(Array.isArray(listed.data)).toBe(true)

    // MIOSA_API_KEY overrides the saved key; --api-key overrides both.
    const [byEnv, byFlag, byFlagAfter] = await Promise.all([
      json(['whoami'], { config, url: null, key: other.key }),
      json(['--api-key', tp.rootKey, 'whoami'], { config, url: null, key: other.key }),
      json(['whoami', '--api-key', other.key], { config, url: null, key: tp.rootKey }),
    ])
    expect(byEnv.organization.id).toBe(other.id)
    expect(byFlag.kind).toBe('root')
    expect(byFlagAfter.organization.id).toBe(other.id)

    // A failed login leaves the saved config alone.
    const before = await readFile(config, 'utf8')
    await fails(['login', '--url', tp.apiUrl, '--key', 'msk_wrongwrongwrongwrongwrong'], { config, url: null })
    expect(await readFile(config, 'utf8')).toBe(before)
  })

  it('login reads the key piped on stdin; logout forgets the key but keeps the URL', async () => {
    const piped = join(tmp, 'piped', 'config.json')
    const login = await json(['login', '--url', tp.apiUrl], { config: piped, url: null, stdin: `${other.key}\n` })
    expect(login.kind).toBe('organization')
    expect(login.organization.id).toBe(other.id)
    expect(JSON.parse(await readFile(piped, 'utf8'))).toEqual({ api_url: tp.apiUrl, api_key: other.key })
    expect((await stat(piped)).mode & 0o777).toBe(0o600)

    // The root key too, piped (`miosa login < root-key`).
    const rootLogin = await json(['login', '--url', tp.apiUrl], { config: piped, url: null, stdin: `${tp.rootKey}\n` })
    expect(rootLogin.kind).toBe('root')
    expect((await json(['organizations', 'list'], { config: piped, url: null })).data.map((o: { id: string }) => o.id)).toContain(other.id)

    const logout = await json(['logout'], { config: piped, url: null })
    expect(logout).toEqual({ logged_out: true, config_file: piped })
    expect(JSON.parse(await readFile(piped, 'utf8'))).toEqual({ api_url: tp.apiUrl })
    expect((await stat(piped)).mode & 0o777).toBe(0o600)

    // The URL is still used; there is no key any more.
    const after = await failsJson(['whoami'], { config: piped, url: null })
    expect(after.code).toBe('unauthenticated')
  })
})

describe('errors: exit 1, the message on stderr, nothing on stdout', () => {
  it('not found', async () => {
    const [plain, asJson] = await Promise.all([
      fails(['workspaces', 'get', 'ws_nonexistent'], { key: org.key }),
      failsJson(['workspaces', 'get', 'ws_nonexistent'], { key: org.key }),
    ])
    expect(plain).toMatch(/not found/)
    expect(plain).toContain('ws_nonexistent')
    expect(plain.trim().split('\n')).toHaveLength(1) // reported once
    expect(asJson.code).toBe('not_found')
    expect(asJson.message).toContain('ws_nonexistent')
  })

  it('an organization key on a root command', async () => {
    const [plain, asJson] = await Promise.all([
      fails(['organizations', 'list'], { key: org.key }),
      failsJson(['organizations', 'list'], { key: org.key }),
    ])
    expect(plain).toMatch(/root key/)
    expect(asJson.code).toBe('forbidden')
    expect(asJson.message).toMatch(/root key/)
  })

  it('invalid input names the field', async () => {
    const [slug, metadata] = await Promise.all([
      failsJson(['workspaces', 'create', 'Bad', '--slug', 'Not A Slug'], { key: org.key }),
      failsJson(['workspaces', 'create', 'Bad', '--metadata', 'novalue'], { key: org.key }),
    ])
    expect(slug.code).toBe('invalid')
    expect(slug.message).toContain('slug')
    expect(metadata.code).toBe('invalid')
    expect(metadata.message).toMatch(/--metadata expects key=value/)
  })

  it('an unreachable API names the URL', async () => {
    const error = await failsJson(['whoami'], { key: org.key, url: 'http://127.0.0.1:1' })
    expect(error.code).toBe('unavailable')
    expect(error.message).toContain('http://127.0.0.1:1')
  })

  it('unknown commands, unknown options and missing arguments', async () => {
    const [unknown, unknownSub, unknownOption, missing] = await Promise.all([
      fails(['bogus']),
      fails(['workspaces', 'bogus']),
      fails(['workspaces', 'list', '--bogus'], { key: org.key }),
      fails(['workspaces', 'get'], { key: org.key }),
    ])
    expect(unknown).toMatch(/unknown command 'bogus'/)
    expect(unknownSub).toMatch(/unknown command 'bogus'/)
    expect(unknownOption).toMatch(/unknown option '--bogus'/)
    expect(missing).toMatch(/missing required argument 'id'/)
  })

  it('usage errors with --json are JSON on stderr too', async () => {
    const [missing, unknownOption] = await Promise.all([
      failsJson(['workspaces', 'get'], { key: org.key }),
      failsJson(['workspaces', 'list', '--bogus'], { key: org.key }),
    ])
    expect(missing.code).toBe('invalid')
    expect(missing.message).toMatch(/missing required argument 'id'/)
    expect(unknownOption.code).toBe('invalid')
    expect(unknownOption.message).toMatch(/unknown option '--bogus'/)
  })
})
