import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGunzip } from 'node:zlib'
import type { BlobStore } from '../blobs/blob-store.js'
import { MiosaError } from '../core/errors.js'
import type { RuntimeDriver, RuntimeRef } from '../runtime/runtime-driver.js'
import type { BuildJob } from './builder.js'
import { WORKSPACE } from './source-snapshot.js'

// What builds that run steps in a builder container share (static builds in
// container-builder.ts, image builds with build-time values in image-build-env.ts).

/** Build output lines longer than this are cut (a minified bundle printed whole). */
const MAX_LINE = 8 * 1024

/** The snapshot without its gzip: the runtime's extractor cannot sniff compression on a stream. */
export function plainTar(gzipped: Readable): Readable {
  const gunzip = createGunzip()
  // pipeline destroys the gunzip stream with the error, so the upload fails with it.
  pipeline(gzipped, gunzip).catch(() => { /* see above */ })
  return gunzip
}

export function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`
}

/** Cuts a byte stream into lines (UTF-8, \n or \r\n; a bare \r, as progress bars use, ends a line too). */
export function lineSplitter(onLine: (line: string) => void): { push(chunk: Buffer): void; end(): void } {
  const decoder = new TextDecoder('utf-8')
  let pending = ''
  const emit = (line: string) => onLine(line.length > MAX_LINE ? `${line.slice(0, MAX_LINE)}…` : line)
  return {
    push: (chunk: Buffer) => {
      pending += decoder.decode(chunk, { stream: true })
      const parts = pending.split(/\r?\n|\r/)
      pending = parts.pop() ?? ''
      for (const line of parts) emit(line)
      if (pending.length > MAX_LINE) {
        emit(pending)
        pending = ''
      }
    },
    end: () => {
      pending += decoder.decode()
      if (pending !== '') emit(pending)
      pending = ''
    },
  }
}

/** Rejects as soon as `signal` aborts (with its reason); the work itself is left to settle on its own. */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  promise.catch(() => { /* a rejection after the abort has nobody waiting for it */ })
  if (signal.aborted) return Promise.reject(signal.reason as Error)
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error)
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(error as Error)
      },
    )
  })
}

/** How a step is shown in logs and errors: a given command line as typed, else the argv. */
export function display(argv: readonly string[]): string {
  if (argv.length === 3 && argv[0] === 'sh' && argv[1] === '-lc') return argv[2] ?? ''
  return argv.join(' ')
}

/** The source snapshot into a builder container's /workspace, emptied first: the template's starter app is not part of the source. */
export async function uploadSource(runtime: RuntimeDriver, ref: RuntimeRef, source: { blobs: BlobStore; sha256: string }, signal: AbortSignal): Promise<void> {
  const cleared = await abortable(runtime.exec(ref, { argv: ['find', WORKSPACE, '-mindepth', '1', '-delete'], cwd: '/', timeoutMs: 60_000 }), signal)
  if (cleared.exit_code !== 0) throw new MiosaError('internal', `emptying the builder's ${WORKSPACE} failed (exit ${cleared.exit_code ?? 'by a signal'}): ${cleared.stderr.slice(0, 300)}`)
  await abortable((async () => runtime.uploadArchive(ref, WORKSPACE, plainTar(await source.blobs.get(source.sha256))))(), signal)
}

export interface StepRun {
  job: BuildJob
  /** When the whole build must have finished (Date.now() clock). */
  deadline: number
  env: Record<string, string>
  /** How a step's argv is run (e.g. wrapped in a prelude); as it is by default. */
  argvOf?: (step: readonly string[]) => string[]
  signal: AbortSignal
}

/** Runs build steps in a builder container in order, every output line logged; a failed or late step is an invalid error naming it. */
export async function runBuildSteps(runtime: RuntimeDriver, ref: RuntimeRef, steps: readonly (readonly string[] | null)[], o: StepRun): Promise<void> {
  const { job, signal } = o
  for (const step of steps) {
    if (step === null) continue
    const shown = display(step)
    job.onLog(`$ ${shown}`)
    const remaining = o.deadline - Date.now()
    if (remaining <= 0) throw new MiosaError('invalid', `the build timed out after ${seconds(job.timeoutMs)}`)
    const stdout = lineSplitter(job.onLog)
    const stderr = lineSplitter(job.onLog)
    const argv = o.argvOf === undefined ? [...step] : o.argvOf(step)
    const result = await abortable(runtime.exec(ref, { argv, cwd: WORKSPACE, env: o.env, timeoutMs: remaining }, { onStdout: stdout.push, onStderr: stderr.push, signal }), signal)
    stdout.end()
    stderr.end()
    if (result.timed_out) throw new MiosaError('invalid', `the build timed out after ${seconds(job.timeoutMs)} (during \`${shown}\`)`)
    if (result.exit_code !== 0) {
      throw new MiosaError('invalid', `the build failed: \`${shown}\` exited with ${result.exit_code ?? 'a signal'}`, { details: { step: shown, exit_code: result.exit_code } })
    }
  }
}
