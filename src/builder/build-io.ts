import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGunzip } from 'node:zlib'

// What builds that run steps in a builder container share (static builds in
// container-builder.ts, image builds with build-time values in image-build-env.ts).

/** Build output lines longer than this are cut (a minified bundle printed whole). */
const MAX_LINE = 8 * 1024

export /** The snapshot without its gzip: the runtime's extractor cannot sniff compression on a stream. */
function plainTar(gzipped: Readable): Readable {
  const gunzip = createGunzip()
  // pipeline destroys the gunzip stream with the error, so the upload fails with it.
  pipeline(gzipped, gunzip).catch(() => {})
  return gunzip
}

export function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`
}

export /** Cuts a byte stream into lines (UTF-8, \n or \r\n; a bare \r, as progress bars use, ends a line too). */
function lineSplitter(onLine: (line: string) => void): { push(chunk: Buffer): void; end(): void } {
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

export /** Rejects as soon as `signal` aborts (with its reason); the work itself is left to settle on its own. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  promise.catch(() => {}) // a rejection after the abort has nobody waiting for it
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

export /** How a step is shown in logs and errors: a given command line as typed, else the argv. */
function display(argv: readonly string[]): string {
  if (argv.length === 3 && argv[0] === 'sh' && argv[1] === '-lc') return argv[2] ?? ''
  return argv.join(' ')
}
