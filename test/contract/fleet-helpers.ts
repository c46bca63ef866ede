import { type ChildProcess, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import pg from 'pg'

// Shared by the events and leadership contract tests: waiting for what another process
// does, and other processes of a fleet (test/contract/fleet-member.ts through tsx).

const MEMBER = fileURLToPath(new URL('./fleet-member.ts', import.meta.url))

/** Resolves once `check` holds, polling; rejects after `ms` with `what`. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, ms = 3000): Promise<number> {
  const started = Date.now()
  for (;;) {
    if (await check()) return Date.now() - started
    if (Date.now() - started > ms) throw new Error(`not within ${ms} ms: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

export interface Member {
  child: ChildProcess
  /** Lines printed so far. */
  lines: string[]
  stderr(): string
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>
}

export function startMember(args: string[]): Member {
  const child = spawn(process.execPath, ['--import', 'tsx', MEMBER, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: string[] = []
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString()
    const parts = stdout.split('\n')
    stdout = parts.pop() ?? ''
    lines.push(...parts)
  })
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString()
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  return { child, lines, stderr: () => stderr, exited }
}

/** Ends a member still running (a test that failed half-way must not leave one behind). */
export async function stopMember(member: Member | undefined): Promise<void> {
  if (member === undefined || member.child.exitCode !== null || member.child.signalCode !== null) return
  member.child.kill('SIGKILL')
  await member.exited
}

/** Runs `sql` on a short-lived session of its own (to cut another session, as an operator would). */
export async function adminQuery<R extends pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query<R>(sql, params)).rows
  } finally {
    await client.end()
  }
}
