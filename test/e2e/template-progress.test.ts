import { randomBytes } from 'node:crypto'
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Docker from 'dockerode'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { packageTemplatesDir } from '../../src/runtime/docker/template-recipes.js'
import { prebuildTemplates } from '../../src/prebuild-templates.js'
import { cliAs } from '../helpers/cli.js'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'

// Progress on a template image build that really happens: a platform reads its templates
// from a copy where static, python and nextjs are small variants (six steps, two slow, a
// fresh token so their images are not built yet). `sandbox create --wait` through the real
// CLI says it is building the template and how far it is, as plain lines in a pipe and as
// JSON events with --json; --prebuild-templates' builder reports each template and step.

const VARIANTS = ['static', 'python', 'nextjs'] as const
const docker = new Docker()
let t: TestPlatform
let tmp: string
let key: string
const { miosa } = cliAs(() => ({ apiUrl: t.apiUrl, key: key, home: tmp }))
/** miosa/template-<name>:latest before the test: building a variant re-points it, the test points it back. */
const latest = new Map<string, string>()

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'miosa-template-progress-'))
  const templatesDir = join(tmp, 'templates')
  await cp(packageTemplatesDir(), templatesDir, { recursive: true })
  const token = randomBytes(6).toString('hex')
  for (const name of VARIANTS) {
    const id = (await docker.getImage(`miosa/template-${name}:latest`).inspect().catch(() => undefined))?.Id
    if (id !== undefined) latest.set(name, id)
    await writeFile(
      join(templatesDir, name, 'Dockerfile'),
      // The template's name in each step: two variants must not share Docker's build cache.
      ['ARG PARENT_IMAGE', 'FROM ${PARENT_IMAGE}', `RUN echo "${name} ${token}: fetching" && sleep 2`, `RUN echo "${name} ${token}: compiling" && sleep 2`, 'RUN echo done', ''].join('\n'),
    )
  }
  t = await startTestPlatform({ templatesDir })
  key = (await t.newOrganization('Template Progress Org')).key
}, 120_000)

afterAll(async () => {
  const built = (await t?.platform.runtime.listTemplates().catch(() => [])) ?? []
  await t?.close()
  for (const template of built.filter((x) => (VARIANTS as readonly string[]).includes(x.name) && x.built)) {
    await docker.getImage(template.image).remove({ force: true }).catch(() => {})
  }
  for (const [name, id] of latest) await docker.getImage(id).tag({ repo: `miosa/template-${name}`, tag: 'latest' }).catch(() => {})
  if (tmp !== undefined) await rm(tmp, { recursive: true, force: true })
}, 120_000)

describe.sequential('template build progress', () => {
  it('sandbox create --wait in a pipe: plain lines saying it builds the template, and how far it is', async () => {
    const result = await miosa(['sandbox', 'create', '--template', 'static', '--name', 'progress-pipe', '--wait'])
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).toMatch(/state\s+running/)
    const lines = result.stderr.trim().split('\n')
    // No terminal: no spinner or carriage returns, one line per change.
    expect(result.stderr).not.toContain('\r')
    expect(lines.some((l) => /^sbx_\w+: creating: building template static, step \d\/6 \(\d+%\): static \w+: fetching$/.test(l)), result.stderr).toBe(true)
    // Docker's bookkeeping lines are not progress.
    expect(result.stderr).not.toContain('---> ')
  }, 300_000)

  it('sandbox create --wait --json: progress events on stderr, the sandbox alone on stdout', async () => {
    const result = await miosa(['sandbox', 'create', '--template', 'python', '--name', 'progress-json', '--wait', '--json'])
    expect(result.code, result.stderr).toBe(0)
    expect(JSON.parse(result.stdout)).toMatchObject({ state: 'running', template: 'python' })
    const events = result.stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(events.every((e: any) => e.type === 'progress' && typeof e.message === 'string' && e.sandbox_id.startsWith('sbx_'))).toBe(true)
    const building = events.filter((e: any) => e.stage === 'building_template')
    expect(building.length, result.stderr).toBeGreaterThan(0)
    expect(building.at(-1)).toMatchObject({ state: 'creating', template: 'python', template_build: { template: 'python' } })
    expect(building.filter((e: any) => e.template_build.steps !== null).every((e: any) => e.template_build.steps === 6)).toBe(true)
    expect(building.some((e: any) => e.template_build.step >= 1 && e.template_build.step <= 6)).toBe(true)
  }, 300_000)

  it('prebuilds the templates not built yet, one line per template and step; then they are built', async () => {
    const lines: string[] = []
    await prebuildTemplates(t.platform.services.templates, (line) => lines.push(line))
    expect(lines[0]).toMatch(/^templates: building nextjs before serving/)
    expect(lines).toContainEqual(expect.stringMatching(/^templates: \[1\/1\] nextjs: step 3\/6: Step 3\/6 : RUN echo "nextjs \w+: fetching"/))
    expect(lines.at(-1)).toMatch(/^templates: built in \d+\.\d s$/)
    const listed = JSON.parse((await miosa(['templates', 'list', '--json'])).stdout).data
    expect(listed.find((x: any) => x.name === 'nextjs')).toMatchObject({ built: true, building: null })
    const again: string[] = []
    await prebuildTemplates(t.platform.services.templates, (line) => again.push(line))
    expect(again).toEqual([`templates: all ${listed.length} built`])
  }, 300_000)
})
