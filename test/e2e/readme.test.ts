import { spawn } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { writeWorkspace } from '../helpers/e2e.js'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'
import { codeBlocks, shellCommands, stripComment } from '../helpers/readme-examples.js'
import type { ShellCommand } from '../helpers/readme-examples.js'

// The README's examples stay true: every command of its `sh` blocks, in order, is run by
// bash as a reader would paste it (with the README's own `alias miosa=…`) against a real
// platform on the real Docker Engine; its `ts` SDK example runs with tsx against the same
// server. Placeholders (`org_…`, `<sandbox-id>`) become the ids earlier commands printed,
// or a fixture the test made (PLACEHOLDERS); a few commands cannot run here and are
// skipped with the reason (SKIPPED). A command that fails, or a placeholder this test does
// not know, fails the test with the README line.

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const README = join(ROOT, 'README.md')

interface Skip {
  match: RegExp
  reason: string
}

const SKIPPED: Skip[] = [
  { match: /^\.\/scripts\/start\b/, reason: 'the test starts its own platform (the same server, on free ports)' },
  { match: /^\.\/scripts\/test\b/, reason: 'the suite this test is part of' },
  { match: /^miosa sandbox terminal\b/, reason: 'interactive: needs a terminal on stdin' },
  { match: /^miosa tenant preview-domain verify\b/, reason: 'needs a CNAME in a domain we own' },
  { match: /^miosa promote \S+ --version 18\b/, reason: 'names version 18 of a longer history' },
]

/** `--follow` streams until interrupted: such a command runs this long, then gets SIGINT. */
const FOLLOW_MS = 3_000

/**
 * Placeholders and what they become: an id printed earlier in the same section (the first
 * or the last one with that prefix), else a fixture. Ids printed in earlier sections count
 * for `org_…`, `ws_…` and `msk_…`, which the first session makes and everything after uses.
 */
const PLACEHOLDERS: Record<string, { prefix: string; pick: 'first' | 'last'; scope: 'section' | 'readme'; fixture?: 'sandbox' }> = {
  'org_…': { prefix: 'org_', pick: 'first', scope: 'readme' },
  'ws_…': { prefix: 'ws_', pick: 'first', scope: 'readme' },
  'msk_…': { prefix: 'msk_', pick: 'first', scope: 'readme' },
  'sbx_…': { prefix: 'sbx_', pick: 'first', scope: 'section' },
  '<sandbox-id>': { prefix: 'sbx_', pick: 'first', scope: 'section', fixture: 'sandbox' },
  '<snapshot-id>': { prefix: 'snap_', pick: 'first', scope: 'section' },
  '<version-id>': { prefix: 'ver_', pick: 'first', scope: 'section' },
  '<token-id>': { prefix: 'tok_', pick: 'last', scope: 'section' },
  '<service-id>': { prefix: 'proc_', pick: 'last', scope: 'section' },
}

/** What sections assume exists before their first command. */
const BEFORE_SECTION: Record<string, (run: Runner) => Promise<void>> = {
  // `promote … --version 2` promotes the version the section's deploy makes over an earlier one.
  Publishing: async (run) => {
    await run.miosa(['deploy', '--sandbox', await run.fixtureSandbox(), '--name', 'smile-dental', '--json'])
  },
  // `environments create shop …` names a project by its slug.
  Environments: async (run) => {
    await run.miosa(['projects', 'create', 'shop', '--workspace', run.seen('readme', 'ws_', 'first'), '--json'])
  },
}

/** Files the examples read from the current directory. */
const LOCAL_FILES: Record<string, string> = {
  'page.jsx': 'export default function Page() {\n  return <h1>Intake form</h1>\n}\n',
  'site/index.html': '<!doctype html><title>Brochure</title><h1>Smile Dental</h1>\n',
  'stripe-key.txt': 'sk_test_readme_example_value\n',
}

/**
 * What a fixture sandbox (node template) holds: a page, so sections that publish a sandbox
 * publish a static site (no image build); the section on runtime instances gets a server.
 */
const FIXTURES: Record<'site' | 'server', Record<string, string>> = {
  site: { 'index.html': '<!doctype html><title>Smile Dental</title><h1>Smile Dental</h1>\n' },
  server: {
    'package.json': JSON.stringify({ name: 'clinic-api', private: true, scripts: { start: 'node server.js' } }),
    'server.js': "require('node:http').createServer((req, res) => res.end('hello from the README')).listen(Number(process.env.PORT ?? 3000))\n",
  },
}
const SERVER_SECTIONS = [/^Dynamic apps/]

interface Outcome {
  code: number | null
  stdout: string
  stderr: string
  interrupted: boolean
}

class Runner {
  readonly env: Record<string, string> = {}
  private aliases: string[] = []
  private readonly printed: { section: string; id: string }[] = []
  private section = ''
  private readonly sandboxes = new Map<keyof typeof FIXTURES, string>()

  constructor(
    private readonly t: TestPlatform,
    readonly home: string,
    readonly cwd: string,
  ) {}

  enter(section: string): void {
    this.section = section
  }

  seen(scope: 'section' | 'readme', prefix: string, pick: 'first' | 'last'): string {
    const ids = this.printed.filter((p) => p.id.startsWith(prefix) && (scope === 'readme' || p.section === this.section)).map((p) => p.id)
    const id = pick === 'first' ? ids[0] : ids.at(-1)
    if (id === undefined) throw new Error(`no ${prefix}… printed before (${scope === 'section' ? `in "${this.section}"` : 'in the README'})`)
    return id
  }

  /** The section's fixture sandbox, made on first use. */
  async fixtureSandbox(): Promise<string> {
    const kind = SERVER_SECTIONS.some((s) => s.test(this.section)) ? 'server' : 'site'
    let id = this.sandboxes.get(kind)
    if (id === undefined) {
      const made = JSON.parse((await this.miosa(['sandbox', 'create', '--template', 'node', '--name', `readme-${kind}`, '--timeout', '1h', '--wait', '--json'])).stdout)
      id = made.id as string
      await writeWorkspace(this.t, this.env.MIOSA_API_KEY as string, id, FIXTURES[kind])
      this.sandboxes.set(kind, id)
    }
    return id
  }

  /** The command with its placeholders filled in and the README's local addresses pointed at the test's server. */
  async fill(command: string): Promise<string> {
    const edgePort = new URL(this.t.edgeUrl).port
    let out = command.replaceAll('http://127.0.0.1:8080', this.t.apiUrl).replace(/(\blocalhost):8081\b/g, `$1:${edgePort}`)
    for (const [placeholder, rule] of Object.entries(PLACEHOLDERS)) {
      if (!out.includes(placeholder)) continue
      let value: string
      try {
        value = this.seen(rule.scope, rule.prefix, rule.pick)
      } catch (error) {
        if (rule.fixture !== 'sandbox') throw error
        value = await this.fixtureSandbox()
      }
      out = out.replaceAll(placeholder, value)
    }
    // Quoted text is the reader's own (an HTML tag in an echo), not a placeholder.
    const unknown = /<[a-z][a-z-]*>|[a-z]+_…/.exec(out.replace(/'[^']*'|"[^"]*"/g, '""'))
    if (unknown !== null) throw new Error(`a placeholder this test does not know: ${unknown[0]} (add it to PLACEHOLDERS)`)
    return out
  }

  /** Runs one command line with bash, as pasted into a terminal after the README's aliases and exports. */
  async shell(command: string): Promise<Outcome> {
    const alias = /^alias\s+(\w+)=/.exec(command)
    if (alias !== null) {
      this.aliases.push(command)
      return { code: 0, stdout: '', stderr: '', interrupted: false }
    }
    const exported = /^export\s+([A-Z_][A-Z0-9_]*)=(\S+)$/.exec(command)
    if (exported !== null) {
      this.env[exported[1] as string] = exported[2] as string
      return { code: 0, stdout: '', stderr: '', interrupted: false }
    }
    const follow = /\s--follow\b/.test(command)
    const result = await this.spawn(['shopt -s expand_aliases', ...this.aliases, command].join('\n'), follow ? FOLLOW_MS : undefined)
    this.remember(result.stdout)
    return result
  }

  /** The real bin directly, for fixtures. */
  async miosa(args: string[]): Promise<Outcome> {
    const result = await this.spawn(`node ${JSON.stringify(join(ROOT, 'dist/cli/main.js'))} ${args.map((a) => `'${a}'`).join(' ')}`)
    if (result.code !== 0) throw new Error(`fixture: miosa ${args.join(' ')}: ${result.stderr}`)
    return result
  }

  private remember(stdout: string): void {
    for (const match of stdout.matchAll(/\b(?:org|ws|prj|sbx|snap|dep|ver|tok|key|proc)_[a-z2-7]{20}\b|\bmsk_[A-Za-z0-9_-]{20,}/g)) {
      this.printed.push({ section: this.section, id: match[0] })
    }
  }

  private spawn(script: string, interruptAfterMs?: number): Promise<Outcome> {
    const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: this.home, LANG: 'C.UTF-8', ...this.env }
    for (const name of ['NODE_EXTRA_CA_CERTS', 'MIOSA_CACHE_DIR']) if (process.env[name] !== undefined) env[name] = process.env[name] as string
    return new Promise((resolve, reject) => {
      const child = spawn('bash', ['-c', script], { cwd: this.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
      let stdout = ''
      let stderr = ''
      let interrupted = false
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
      const timer =
        interruptAfterMs === undefined
          ? undefined
          : setTimeout(() => {
              interrupted = true
              // bash runs the command as its own child: interrupt both, as Ctrl-C would.
              spawn('pkill', ['-INT', '-P', String(child.pid)]).on('close', () => child.kill('SIGINT'))
            }, interruptAfterMs)
      child.on('error', reject)
      child.on('close', (code) => {
        if (timer !== undefined) clearTimeout(timer)
        resolve({ code, stdout, stderr, interrupted })
      })
    })
  }
}

let t: TestPlatform
let tmp: string
let runner: Runner

beforeAll(async () => {
  t = await startTestPlatform({ instanceReconcileIntervalMs: 250 })
  tmp = await mkdtemp(join(tmpdir(), 'miosa-readme-'))
  const home = join(tmp, 'home')
  const cwd = join(tmp, 'work')
  // The reader's machine: the root key where the server saved it, and a checkout to run from.
  await mkdir(join(home, '.local/share/miosa'), { recursive: true })
  await writeFile(join(home, '.local/share/miosa/root-key'), `${t.rootKey}\n`, { mode: 0o600 })
  await mkdir(join(cwd, 'node_modules'), { recursive: true })
  await symlink(join(ROOT, 'dist'), join(cwd, 'dist'))
  await symlink(ROOT, join(cwd, 'node_modules', 'miosa'))
  for (const [path, content] of Object.entries(LOCAL_FILES)) {
    await mkdir(join(cwd, path, '..'), { recursive: true })
    await writeFile(join(cwd, path), content)
  }
  runner = new Runner(t, home, cwd)
}, 60_000)

afterAll(async () => {
  await t?.close()
  if (tmp !== undefined) await rm(tmp, { recursive: true, force: true })
}, 120_000)

describe('README examples', () => {
  it('splits sh blocks into the commands a reader pastes', () => {
    const blocks = codeBlocks('## One\n\n```sh\nmiosa a --x \\\n  --y  # → done\n# a comment\n\nmiosa b \'#keep\' "# too"\n```\n### Two\n```ts\nconst x = 1\n```\n')
    expect(shellCommands(blocks)).toEqual([
      { section: 'One', line: 4, command: 'miosa a --x --y', prints: 'done' },
      { section: 'One', line: 8, command: `miosa b '#keep' "# too"` },
    ])
    expect(blocks.map((b) => [b.section, b.lang])).toEqual([['One', 'sh'], ['Two', 'ts']])
    expect(stripComment("miosa tenant branding set --accent-color '#0f766e' --json   # brand")).toBe("miosa tenant branding set --accent-color '#0f766e' --json")
  })

  it('runs every sh example in order against a real platform, and the SDK example', async () => {
    const blocks = codeBlocks(await readFile(README, 'utf8'))
    const commands = shellCommands(blocks)
    expect(commands.length).toBeGreaterThan(20)
    const skipped: string[] = []
    const timings: string[] = []
    let section: string | undefined
    for (const c of commands) {
      const skip = SKIPPED.find((s) => s.match.test(c.command))
      if (skip !== undefined) {
        skipped.push(`README.md:${c.line} ${c.command}  (skipped: ${skip.reason})`)
        continue
      }
      if (c.section !== section) {
        section = c.section
        runner.enter(section)
        const before = Date.now()
        await BEFORE_SECTION[section]?.(runner)
        timings.push(`${String(Date.now() - before).padStart(6)} ms  (before "${section}")`)
      }
      const started = Date.now()
      await runOne(c)
      timings.push(`${String(Date.now() - started).padStart(6)} ms  README.md:${c.line} ${c.command}`)
      if (process.env.MIOSA_README_TIMINGS === '1') console.log(timings.at(-1))
    }
    // The SDK example, as a file of the reader's project (`miosa` installed in its node_modules).
    for (const block of blocks.filter((b) => b.lang === 'ts')) {
      const file = join(runner.cwd, `example-${block.line}.mts`)
      await writeFile(file, block.text)
      const result = await runner.shell(`MIOSA_API_URL=${t.apiUrl} node ${JSON.stringify(join(ROOT, 'node_modules/tsx/dist/cli.mjs'))} ${file}`)
      expect(result.code, `README.md:${block.line} (${block.section} example)\n${result.stderr}`).toBe(0)
    }
    // Few, and each with its reason: printed so a reader of the test log sees what was not run.
    console.log(`README examples run:\n${timings.join('\n')}\nskipped:\n${skipped.join('\n')}`)
    expect(skipped.length).toBeLessThanOrEqual(SKIPPED.length)
  }, 600_000)
})

async function runOne(c: ShellCommand): Promise<void> {
  const where = `README.md:${c.line} (${c.section}): ${c.command}`
  const command = await runner.fill(c.command).catch((error: Error) => {
    throw new Error(`${where}\n${error.message}`)
  })
  const result = await runner.shell(command)
  const said = `${where}\nran: ${command}\nexit ${result.code}\nstdout: ${result.stdout.slice(0, 2000)}\nstderr: ${result.stderr.slice(0, 2000)}`
  if (result.interrupted) {
    // Still streaming when interrupted: it worked as long as it had not failed.
    expect(result.stderr, said).not.toMatch(/error/i)
    return
  }
  expect(result.code, said).toBe(0)
  if (c.prints !== undefined) expect(result.stdout, said).toContain(c.prints)
  if (/^curl\b/.test(command) && result.stdout.startsWith('{')) expect(JSON.parse(result.stdout), said).not.toHaveProperty('error')
  else if (/\s--json\b/.test(command) && !command.includes('&&')) expect(() => JSON.parse(result.stdout), said).not.toThrow()
}
