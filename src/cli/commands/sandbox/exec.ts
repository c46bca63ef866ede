import type { Command } from 'commander'
import { Option } from 'commander'
import type { RawData, WebSocket } from 'ws'
import { MiosaError, isErrorCode } from '../../../core/errors.js'
import type { ExecExit, ExecInput, MiosaClient } from '../../../sdk/index.js'
import type { ActionContext } from '../../command.js'
import { collect, command, parsePairs, run } from '../../command.js'
import { closed, openSocket } from '../../web-socket.js'

// `miosa sandbox exec <id> -- <command>`: with --json, the buffered result; otherwise the
// output streams live (server-sent events, or the WebSocket form when there is stdin to
// forward) and the CLI exits with the command's own exit code either way.

export function registerExec(parent: Command): void {
  const cmd = command(parent, 'exec <sandbox-id> [command...]', "run a command in a sandbox and exit with the command's exit code")
    .option('--cwd <dir>', 'working directory (default /workspace)')
    .option('--env <KEY=VALUE>', 'an environment variable for this command (repeatable)', collect)
    .option('--timeout <duration>', 'kill the command after this long: 90s, 10m, or seconds (default 5m)')
    .addOption(new Option('--no-stdin', 'do not forward stdin (by default it is, when it is not a terminal)'))
    .option('--background', 'start it in the background as a service of the sandbox (a dev server): it answers at once, and the command is started again whenever the sandbox resumes')
    .addHelpText(
      'after',
      `
Put the command after "--". One argument is a shell command line (run by sh -lc); several are
the program and its arguments, run without a shell.

Examples:
  miosa sandbox exec <sandbox-id> --json -- sh -lc "cd /workspace && npm install"
  miosa sandbox exec <sandbox-id> -- "cd /workspace && npm run build"
  echo hello | miosa sandbox exec <sandbox-id> -- cat
  miosa sandbox exec <sandbox-id> --background -- "npm run dev"   (list: miosa sandbox services list <sandbox-id>)`,
    )
  run(cmd, async (ctx, [id, ...rest], opts) => {
    const argv = (rest.flat() as string[]).filter((a) => a !== undefined)
    if (argv.length === 0) {
      throw new MiosaError('invalid', 'no command given: miosa sandbox exec <sandbox-id> -- <command> [args...]', { details: { field: 'command' } })
    }
    const input: ExecInput = {
      cmd: argv.length === 1 ? (argv[0] as string) : argv,
      ...(opts.cwd === undefined ? {} : { cwd: opts.cwd as string }),
      ...(opts.env === undefined ? {} : { env: parsePairs(opts.env as string[], '--env') }),
      ...(opts.timeout === undefined ? {} : { timeout: /^\d+$/.test(String(opts.timeout)) ? Number(opts.timeout) : (opts.timeout as string) }),
    }
    const client = await ctx.client()
    if (opts.background === true) {
      if (opts.timeout !== undefined) throw new MiosaError('invalid', '--timeout does not apply to --background: a service runs until removed', { details: { field: 'timeout' } })
      const { timeout: _none, ...service } = input
      const started = await client.sandboxes.startService(id as string, service)
      return { data: started, human: `started service ${started.id} (output: ${started.log_path}); it starts again whenever the sandbox resumes` }
    }
    const forwardStdin = opts.stdin !== false && ctx.stdin.isTTY !== true
    if (ctx.json) {
      const withStdin = forwardStdin ? { ...input, ...(await stdinText(ctx.stdin)) } : input
      const result = await client.sandboxes.exec(id as string, withStdin)
      return { data: result, exitCode: result.exit_code }
    }
    const exit = forwardStdin ? await execOverSocket(client, id as string, input, ctx) : await execOverEvents(client, id as string, input, ctx)
    if (exit.timed_out) ctx.stderr.write(`miosa: the command timed out after ${Math.round(exit.duration_ms / 1000)}s and was killed\n`)
    if (exit.truncated) ctx.stderr.write('miosa: output beyond the cap was dropped\n')
    return { data: exit, human: '', exitCode: exit.exit_code }
  })
}

/** Piped stdin for the buffered form: text only (the JSON field is a string). */
async function stdinText(stdin: NodeJS.ReadStream): Promise<{ stdin?: string }> {
  const chunks: Buffer[] = []
  for await (const chunk of stdin) chunks.push(Buffer.from(chunk as Buffer))
  return chunks.length === 0 ? {} : { stdin: Buffer.concat(chunks).toString('utf8') }
}

function execOverEvents(client: MiosaClient, id: string, input: ExecInput, ctx: ActionContext): Promise<ExecExit> {
  const abort = new AbortController()
  // Ctrl-C ends the stream, which aborts the command in the sandbox.
  const onSigint = () => abort.abort()
  process.once('SIGINT', onSigint)
  return client.sandboxes
    .execStream(id, input, {
      onStdout: (chunk) => ctx.stdout.write(chunk),
      onStderr: (chunk) => ctx.stderr.write(chunk),
      signal: abort.signal,
    })
    .catch((error: unknown) => {
      if (abort.signal.aborted) throw new MiosaError('invalid', 'interrupted: the command was aborted')
      throw error
    })
    .finally(() => process.off('SIGINT', onSigint))
}

async function execOverSocket(client: MiosaClient, id: string, input: ExecInput, ctx: ActionContext): Promise<ExecExit> {
  const ws = await openSocket(client.sandboxes.execSocket(id))
  let exit: ExecExit | undefined
  let failure: MiosaError | undefined
  ws.on('message', (data: RawData, isBinary: boolean) => {
    if (isBinary) return
    const message = JSON.parse(data.toString()) as { type: string; data?: string; error?: { code: string; message: string } } & ExecExit
    if (message.type === 'stdout') ctx.stdout.write(Buffer.from(message.data ?? '', 'base64'))
    else if (message.type === 'stderr') ctx.stderr.write(Buffer.from(message.data ?? '', 'base64'))
    else if (message.type === 'exit') exit = { exit_code: message.exit_code, duration_ms: message.duration_ms, truncated: message.truncated, timed_out: message.timed_out }
    else if (message.type === 'error') failure = new MiosaError(isErrorCode(message.error?.code) ? message.error.code : 'internal', message.error?.message ?? 'the command failed')
  })
  const done = closed(ws)
  const onSigint = () => ws.close(1000, 'interrupted')
  process.once('SIGINT', onSigint)
  try {
    ws.send(JSON.stringify(input))
    await pumpStdin(ctx.stdin, ws, done)
    const code = await done
    if (failure !== undefined) throw failure
    if (exit === undefined) throw new MiosaError('unavailable', `the connection closed before the command exited (code ${code})`)
    return exit
  } finally {
    process.off('SIGINT', onSigint)
    ctx.stdin.destroy() // nothing more to read: let the process exit
  }
}

/** Forwards stdin as binary frames, then stdin_end; stops early when the command has already exited. */
async function pumpStdin(stdin: NodeJS.ReadStream, ws: WebSocket, done: Promise<number>): Promise<void> {
  // A command that exits without reading all its input ends the pump (and stops the read).
  void done.then(() => stdin.destroy())
  try {
    for await (const chunk of stdin) {
      if (ws.readyState !== ws.OPEN) return
      await new Promise<void>((resolve, reject) => ws.send(chunk as Buffer, { binary: true }, (error) => (error ? reject(error) : resolve())))
    }
  } catch (error) {
    if (ws.readyState === ws.OPEN) throw error
    return
  }
  if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'stdin_end' }))
}
