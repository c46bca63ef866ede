import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { keyIdOf, parseMasterKey } from '../../src/core/secret-box.js'
import { runCli } from '../helpers/cli.js'
import type { CliResult } from '../helpers/cli.js'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'

// `miosa env set|list|unset` and `miosa admin rotate-master-key` (the built bin) against a
// real platform: a secret given on stdin never comes back on stdout or stderr.

const SECRET = 'sk_live_CLI7secret7value7never7printed'

let t: TestPlatform
let tmp: string
let org: { id: string; key: string }
let dep: { id: string; slug: string }

function miosa(args: string[], key: string, stdin?: string): Promise<CliResult> {
  return runCli(args, {
    env: { MIOSA_CONFIG: join(tmp, 'config.json'), MIOSA_API_URL: t.apiUrl, MIOSA_API_KEY: key, XDG_CONFIG_HOME: tmp },
    ...(stdin === undefined ? {} : { stdin }),
  })
}

async function json(args: string[], key = org.key, stdin?: string): Promise<any> {
  const r = await miosa([...args, '--json'], key, stdin)
  expect(r.code, `miosa ${args.join(' ')}\n${r.stderr}`).toBe(0)
  expect(r.stderr).toBe('')
  expect(r.stdout.includes(SECRET)).toBe(false)
  return JSON.parse(r.stdout)
}

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'miosa-env-cli-'))
  t = await startTestPlatform({ reconcileIntervalMs: 3_600_000 })
  org = await t.newOrganization('Env CLI Org')
  const ws = await t.call('POST', '/api/v1/workspaces', { key: org.key, body: { name: 'W' } })
  const created = await t.call('POST', '/api/v1/deployments', { key: org.key, body: { name: 'Cli App', workspace_id: ws.json.id } })
  dep = { id: created.json.id, slug: created.json.slug }
})

afterAll(async () => {
  await t?.close()
  await rm(tmp, { recursive: true, force: true })
})

describe('miosa env', () => {
  it('sets pairs and a secret from stdin, lists previews, reveals plain values, unsets', async () => {
    const set = await json(['env', 'set', dep.slug, 'API_URL=https://api.example.com', 'VITE_MODE=prod', '--env', 'staging'])
    expect(set).toMatchObject({ environment: 'staging', restart_required: true, restart_command: `miosa restart ${dep.slug} --env staging` })
    expect(set.data.map((v: any) => [v.key, v.phase, v.baked, v.preview])).toEqual([
      ['API_URL', 'runtime', false, 'http…'],
      ['VITE_MODE', 'build', true, 'prod…'],
    ])
    const secret = await json(['env', 'set', dep.slug, 'STRIPE_KEY', '--secret', '--env', 'staging', '--both'], org.key, `${SECRET}\n`)
    expect(secret.data[0]).toMatchObject({ key: 'STRIPE_KEY', is_secret: true, phase: 'both', preview: '••••' })
    const resolved = await t.platform.services.envVars.resolve({ organization_id: org.id }, dep.id, 'staging', 'runtime')
    expect(resolved.env.STRIPE_KEY).toBe(SECRET)

    const listed = await json(['env', 'list', dep.id, '--env', 'staging'])
    expect(listed.data.map((v: any) => [v.key, v.preview, v.value])).toEqual([
      ['API_URL', 'http…', undefined],
      ['STRIPE_KEY', '••••', undefined],
      ['VITE_MODE', 'prod…', undefined],
    ])
    const revealed = await json(['env', 'list', dep.slug, '--env', 'staging', '--reveal'])
    expect(revealed.data.map((v: any) => v.value)).toEqual(['https://api.example.com', undefined, 'prod'])
    const human = await miosa(['env', 'list', dep.slug, '--reveal'], org.key)
    expect(human.code).toBe(0)
    expect(human.stdout).toContain('••••')
    expect(human.stdout.includes(SECRET)).toBe(false)

    const unset = await json(['env', 'unset', dep.slug, 'VITE_MODE', '--env', 'staging'])
    expect(unset).toMatchObject({ key: 'VITE_MODE', deleted: true, restart_required: true })
  })

  it('fails clearly without echoing a value: reserved key, two phases, two stdin keys', async () => {
    const reserved = await miosa(['env', 'set', dep.slug, `PORT=${SECRET}`, '--json'], org.key)
    expect(reserved.code).toBe(1)
    expect(JSON.parse(reserved.stderr).error.message).toMatch(/reserved/)
    expect(reserved.stderr.includes(SECRET)).toBe(false)
    const phases = await miosa(['env', 'set', dep.slug, 'A=b', '--build', '--runtime'], org.key)
    expect(phases.code).toBe(1)
    expect(phases.stderr).toMatch(/one of --build, --runtime and --both/)
    const twoStdin = await miosa(['env', 'set', dep.slug, 'A', 'B'], org.key, SECRET)
    expect(twoStdin.code).toBe(1)
    expect(twoStdin.stderr.includes(SECRET)).toBe(false)
  })
})

describe('miosa admin rotate-master-key', () => {
  it('rotates with the root key only, writing a given new key file (0600) and never printing the key', async () => {
    const refused = await miosa(['admin', 'rotate-master-key', '--json'], org.key)
    expect(refused.code).toBe(1)
    expect(JSON.parse(refused.stderr).error.code).toBe('forbidden')

    const file = join(tmp, 'new-master-key')
    const result = await json(['admin', 'rotate-master-key', '--new-key-file', file], t.rootKey)
    const written = (await readFile(file, 'utf8')).trim()
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    expect(result).toMatchObject({ key_id: keyIdOf(parseMasterKey(written)), key_source: 'file', new_key_file: file })
    expect(result.re_encrypted).toBeGreaterThanOrEqual(2)
    expect(JSON.stringify(result).includes(written)).toBe(false)
    const resolved = await t.platform.services.envVars.resolve({ organization_id: org.id }, dep.id, 'staging', 'runtime')
    expect(resolved.env.STRIPE_KEY).toBe(SECRET)

    const again = await miosa(['admin', 'rotate-master-key'], t.rootKey)
    expect(again.code, again.stderr).toBe(0)
    expect(again.stdout).toMatch(/re-encrypted under master key [0-9a-f]{16}/)
  })
})
