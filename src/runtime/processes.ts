import { spawn } from 'node:child_process'

// Running host programs (debootstrap, tar, npm, umount) without a shell, so arguments
// are never interpreted, and with their stderr in the error when they fail.

/** Runs a program (never a shell), answering its stdout; `onLine` gets stdout and stderr lines as they come. */
export function run(command: string, args: string[], o: { cwd?: string; onLine?: (line: string) => void; signal?: AbortSignal } = {}): Promise<string> {
  const child = spawn(command, args, { cwd: o.cwd, stdio: ['ignore', 'pipe', 'pipe'], shell: false, ...(o.signal === undefined ? {} : { signal: o.signal }) })
  let stdout = ''
  let stderr = ''
  const splitter = () => {
    let partial = ''
    return {
      push(text: string) {
        const parts = (partial + text).split('\n')
        partial = parts.pop() ?? ''
        for (const line of parts) if (line.trim() !== '') o.onLine?.(line)
      },
      flush() {
        if (partial.trim() !== '') o.onLine?.(partial)
        partial = ''
      },
    }
  }
  const out = splitter()
  const err = splitter()
  child.stdout.setEncoding('utf8').on('data', (text: string) => {
    stdout += text
    out.push(text)
  })
  child.stderr.setEncoding('utf8').on('data', (text: string) => {
    stderr = (stderr + text).slice(-4000)
    err.push(text)
  })
  return exited(child, command).then(
    () => {
      out.flush()
      err.flush()
      return stdout
    },
    (error: Error) => {
      out.flush()
      err.flush()
      const said = stderr.trim().split('\n').slice(-10).join('\n')
      throw new Error(`${error.message}${said === '' ? '' : `: ${said}`}`, { cause: error })
    },
  )
}

export function exited(child: ReturnType<typeof spawn>, command: string): Promise<void> {
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code, signal) => {
      if (code === 0) resolve()
      else reject(new Error(`${command} exited with ${code ?? signal}`))
    })
  })
}
