import type { Command } from 'commander'
import type { RawData } from 'ws'
import { MiosaError } from '../../../core/errors.js'
import { command, run } from '../../command.js'
import { closed, openSocket } from '../../web-socket.js'

// `miosa sandbox terminal <id>`: an interactive shell. The local terminal goes raw, its
// keystrokes travel as binary frames, the sandbox's bytes come back the same way, and a
// window resize is a {"type":"resize"} text message.

export function registerTerminal(parent: Command): void {
  const cmd = command(parent, 'terminal <sandbox-id>', 'open an interactive shell in the sandbox (exit or Ctrl-D to leave)')
  run(cmd, async ({ client, stdin, stdout, json }, [id]) => {
    if (stdin.isTTY !== true) {
      throw new MiosaError('invalid', 'miosa sandbox terminal needs an interactive terminal; use `miosa sandbox exec` for scripts')
    }
    const size = () => ({ cols: stdout.columns || 80, rows: stdout.rows || 24 })
    const ws = await openSocket((await client()).sandboxes.terminalSocket(id as string, size()))
    const done = closed(ws)
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (isBinary) stdout.write(data as Buffer)
    })
    const onInput = (chunk: Buffer) => {
      if (ws.readyState === ws.OPEN) ws.send(chunk, { binary: true })
    }
    const onResize = () => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'resize', ...size() }))
    }
    stdin.setRawMode(true)
    stdin.on('data', onInput)
    stdout.on('resize', onResize)
    try {
      const code = await done
      return { data: { sandbox_id: id, close_code: code }, human: json ? undefined : '' }
    } finally {
      stdout.off('resize', onResize)
      stdin.off('data', onInput)
      stdin.setRawMode(false)
      stdin.pause()
    }
  })
}
