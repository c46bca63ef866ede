import type { Readable } from 'node:stream'
import type { FileStat } from '../runtime/agent/protocol.js'
import type { ExecResult, ExecStreams, RuntimeDriver, Terminal } from '../runtime/runtime-driver.js'
import type { OrgScope, SandboxRecord } from '../store/store.js'
import type { EnvironmentValues } from './environment-values.js'
import type { SandboxDisk } from './sandbox-disk.js'
import { scopeOf } from './sandboxes.js'
import type { SandboxService } from './sandboxes.js'

// What agents and developers do inside a sandbox: exec, files, archives, terminals.
// Each resumes a paused sandbox transparently and counts as activity; exec streams and
// terminals hold the sandbox awake for as long as they are open.

export const DEFAULT_EXEC_TIMEOUT_S = 300
export const MAX_OUTPUT_BYTES = 1024 * 1024

export interface ExecInput {
  cmd: string[] | string
  cwd?: string | undefined
  env?: Record<string, string> | undefined
  /** Seconds. */
  timeout?: number | undefined
  stdin?: string | undefined
}

/** An uploaded archive that has been spooled and checked: no entry leaves its target directory. */
export interface CheckedArchive {
  open(): Readable
  discard(): Promise<void>
}

export type ArchiveChecker = (tar: Readable) => Promise<CheckedArchive>

export class SandboxOperations {
  /**
   * The deployment environment's runtime values of sandboxes that develop against one, read
   * when the sandbox is created or resumed (any state change drops them) and kept only here,
   * in memory: never with the sandbox's record.
   */
  private readonly environmentEnv = new Map<string, Promise<Record<string, string>>>()

  constructor(
    private readonly deps: {
      sandboxes: SandboxService
      runtime: RuntimeDriver
      checkArchive: ArchiveChecker
      /** Where a deployment environment's env vars come from; without it, sandboxes get none. */
      environmentValues?: EnvironmentValues | undefined
      /** Refuses writes to a sandbox over its disk limit, and measures again after each. */
      disk?: SandboxDisk | undefined
    },
  ) {
    deps.sandboxes.onChange((sandboxId) => this.environmentEnv.delete(sandboxId))
  }

  async exec(organizationId: string, id: string, input: ExecInput, io?: Omit<ExecStreams, 'stdin'> & { stdin?: AsyncIterable<Buffer> }): Promise<ExecResult> {
    const record = await this.attach(organizationId, id)
    const release = io === undefined ? undefined : this.deps.sandboxes.activity.hold(id)
    try {
      return await this.deps.runtime.exec(
        this.deps.sandboxes.refOf(record),
        {
          argv: typeof input.cmd === 'string' ? ['sh', '-lc', input.cmd] : input.cmd,
          cwd: input.cwd,
          env: { ...(await this.environmentOf(record)), ...record.env, ...input.env },
          timeoutMs: (input.timeout ?? DEFAULT_EXEC_TIMEOUT_S) * 1000,
          maxOutputBytes: MAX_OUTPUT_BYTES,
          stdin: input.stdin === undefined ? undefined : Buffer.from(input.stdin),
        },
        io,
      )
    } finally {
      release?.()
      this.deps.sandboxes.activity.touch(id)
    }
  }

  async readFile(organizationId: string, id: string, path: string): Promise<Readable> {
    return this.deps.runtime.readFile(await this.ref(organizationId, id), path)
  }

  async writeFile(organizationId: string, id: string, path: string, content: Buffer | Readable, mode?: number): Promise<FileStat> {
    const record = await this.attach(organizationId, id)
    this.deps.disk?.checkWrite(record)
    try {
      return await this.deps.runtime.writeFile(this.deps.sandboxes.refOf(record), path, content, mode)
    } finally {
      this.deps.disk?.afterWrite(record)
    }
  }

  async stat(organizationId: string, id: string, path: string): Promise<FileStat> {
    return this.deps.runtime.stat(await this.ref(organizationId, id), path)
  }

  async list(organizationId: string, id: string, path: string): Promise<FileStat[]> {
    return this.deps.runtime.list(await this.ref(organizationId, id), path)
  }

  async mkdir(organizationId: string, id: string, path: string): Promise<FileStat> {
    return this.deps.runtime.mkdir(await this.ref(organizationId, id), path)
  }

  async move(organizationId: string, id: string, from: string, to: string, overwrite: boolean): Promise<FileStat> {
    return this.deps.runtime.move(await this.ref(organizationId, id), from, to, overwrite)
  }

  async remove(organizationId: string, id: string, path: string, recursive: boolean): Promise<void> {
    await this.deps.runtime.remove(await this.ref(organizationId, id), path, recursive)
  }

  async downloadArchive(organizationId: string, id: string, path: string): Promise<Readable> {
    return this.deps.runtime.downloadArchive(await this.ref(organizationId, id), path)
  }

  /** Extracts a tar (or tar.gz) into `path`. The whole archive is checked before anything is written. */
  async uploadArchive(organizationId: string, id: string, path: string, tar: Readable): Promise<void> {
    const record = await this.attach(organizationId, id)
    this.deps.disk?.checkWrite(record)
    const checked = await this.deps.checkArchive(tar)
    try {
      await this.deps.runtime.uploadArchive(this.deps.sandboxes.refOf(record), path, checked.open())
    } finally {
      this.deps.disk?.afterWrite(record)
      await checked.discard()
    }
  }

  /** An interactive shell; the sandbox stays awake (and its input counts as activity) until it closes. */
  async terminal(organizationId: string, id: string, size: { cols: number; rows: number }): Promise<Terminal> {
    const record = await this.attach(organizationId, id)
    const terminal = await this.deps.runtime.openTerminal(this.deps.sandboxes.refOf(record), { ...size, env: { ...(await this.environmentOf(record)), ...record.env } })
    const release = this.deps.sandboxes.activity.hold(id)
    terminal.stream.on('data', () => this.deps.sandboxes.activity.touch(id))
    terminal.stream.once('close', release)
    terminal.stream.once('error', release)
    return terminal
  }

  /** The environment's runtime values for a sandbox that develops against one ({} otherwise). */
  environmentOf(record: SandboxRecord): Promise<Record<string, string>> {
    const values = this.deps.environmentValues
    if (record.deployment_id === null || record.environment === null || values === undefined) return Promise.resolve({})
    let env = this.environmentEnv.get(record.id)
    if (env === undefined) {
      env = values.resolve(scopeOf(record), record.deployment_id, record.environment, 'runtime').then((r) => r.env)
      // A failed read is not kept: the next exec tries again.
      env.catch(() => this.environmentEnv.delete(record.id))
      this.environmentEnv.set(record.id, env)
    }
    return env
  }

  private async attach(organizationId: string, id: string): Promise<SandboxRecord> {
    const scope: OrgScope = { organization_id: organizationId }
    const record = await this.deps.sandboxes.ensureRunning(scope, id)
    this.deps.sandboxes.activity.touch(id)
    return record
  }

  private async ref(organizationId: string, id: string) {
    return this.deps.sandboxes.refOf(await this.attach(organizationId, id))
  }
}
