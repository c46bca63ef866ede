import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect } from 'vitest'

// Runs the built `miosa` bin (dist/, built by scripts/test before vitest) as a user would.

export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url))

export interface CliResult {
  code: number
  stdout: string
  stderr: string
}

export function runCli(args: string[], opts: { env?: Record<string, string | undefined>; stdin?: string } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, MIOSA_API_URL: undefined, MIOSA_API_KEY: undefined, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }))
    child.stdin.end(opts.stdin ?? '')
  })
}

export interface CliUser {
  apiUrl: string
  key: string
  /** Where the CLI keeps its config (and XDG dirs): a test's own temporary directory. */
  home: string
}

/**
 * The CLI as one signed-in user of a test platform. `miosa` runs it; `json` runs it with
 * `--json` (put before a `--`, whose rest is the sandbox's command), expects exit 0 and
 * parses what it printed. `user` is read at each run: tests set their platform up later.
 */
export function cliAs(user: () => CliUser): {
  miosa: (args: string[], stdin?: string) => Promise<CliResult>
  json: (args: string[]) => Promise<any>
} {
  const miosa = (args: string[], stdin?: string): Promise<CliResult> => {
    const u = user()
    return runCli(args, {
      env: { MIOSA_CONFIG: join(u.home, 'config.json'), MIOSA_API_URL: u.apiUrl, MIOSA_API_KEY: u.key, XDG_CONFIG_HOME: u.home },
      ...(stdin === undefined ? {} : { stdin }),
    })
  }
  const json = async (args: string[]): Promise<any> => {
    const end = args.indexOf('--')
    const result = await miosa(end === -1 ? [...args, '--json'] : [...args.slice(0, end), '--json', ...args.slice(end)])
    expect(result.code, `miosa ${args.join(' ')}\n${result.stderr}\n${result.stdout}`).toBe(0)
    return JSON.parse(result.stdout)
  }
  return { miosa, json }
}
