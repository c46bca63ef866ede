import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { CLI } from './cli.js'

// `miosa server` as an operator runs it: the built binary in its own process.

export interface ServerProcess {
  child: ChildProcess
  /** Empty for `--role edge`. */
  apiUrl: string
  edgeUrl: string
  /** The --json start line: api_url, edge_url, data_dir, root_key_file, root_key (first start only); an edge's: role, edge_url. */
  started: Record<string, string | null>
  stdout: () => string
  stderr: () => string
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>
}

export function startServerProcess(args: string[], env: Record<string, string | undefined> = {}): Promise<ServerProcess> {
  const child = spawn(process.execPath, [CLI, 'server', '--port', '0', '--edge-port', '0', '--json', ...args], {
    env: { ...process.env, MIOSA_ROOT_KEY: undefined, MIOSA_DATABASE_URL: undefined, MIOSA_LOG_PRETTY: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 20 s (${args.join(" ")}):\n${out}\n${err}`)), 20_000)
    child.stderr.on('data', (c: Buffer) => (err += c.toString()))
    child.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`server exited with ${code} before starting:\n${out}\n${err}`))
    })
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString()
      // `--role all` prints its API, edge and root key file; `--role edge` its edge only.
      const line = out.split('\n').find((l) => l.includes('"root_key_file"') || l.includes('"role":"edge"'))
      if (line === undefined) return
      clearTimeout(timer)
      const started = JSON.parse(line) as Record<string, string | null>
      resolve({
        child,
        started,
        apiUrl: (started.api_url ?? '').replace(/\/api\/v1$/, ''),
        edgeUrl: started.edge_url as string,
        stdout: () => out,
        stderr: () => err,
        stop(signal = 'SIGTERM') {
          // One signal only: a second SIGTERM during the drain would (rightly) kill the process outright.
          if (!child.killed && child.exitCode === null) child.kill(signal)
          return exited
        },
      })
    })
  })
}
