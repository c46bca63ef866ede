import type { FastifyRequest } from 'fastify'
import { idParams } from '../../schemas/common.js'
import { execEventSchema, execQuery, execResultSchema, execSchema, terminalQuery } from '../../schemas/sandboxes.js'
import { streamError } from '../error-handler.js'
import { EventStream } from '../event-stream.js'
import { defineRawRoute, defineSocketRoute } from '../route.js'
import type { SocketContext } from '../route.js'
import { execSession } from '../sockets/exec-session.js'
import { terminalSession } from '../sockets/terminal-session.js'

// Running commands in a sandbox: buffered JSON, server-sent events, or a WebSocket with
// stdin; and an interactive terminal. Anything about the sandbox itself (unknown id, a
// destroyed or failed sandbox, resuming a paused one) is settled before a stream starts,
// so it is an ordinary HTTP error; only the command's own failure arrives as an event.

const tag = 'Sandboxes'
const sandboxParams = idParams('sandbox')

const exists = async ({ services, organizationId, params }: SocketContext<{ id: string }, unknown>) => {
  await services.sandboxes.get(organizationId, params.id)
}

function wantsEventStream(request: FastifyRequest): boolean {
  return (request.headers.accept ?? '').split(',').some((type) => type.trim().startsWith('text/event-stream'))
}

export const sandboxExecRoutes = [
  defineRawRoute({
    method: 'POST',
    path: '/sandboxes/:id/exec',
    scope: 'organization',
    tag,
    summary: 'Run a command (argv array, or a string run by sh -lc); ?stream=true streams its output as server-sent events',
    params: sandboxParams,
    query: execQuery,
    body: execSchema,
    response: execResultSchema,
    produces: [
      {
        contentType: 'text/event-stream',
        description:
          'With ?stream=true or "Accept: text/event-stream": events stdout and stderr ({data: base64}) as output comes, then one exit event; an error event if it fails midway. Closing the connection aborts the command.',
        schema: execEventSchema,
      },
    ],
    example: { cmd: 'cd /workspace && npm install', timeout: '10m' },
    handler: async ({ services, organizationId, params, query, body, request }) => {
      if (!query.stream && !wantsEventStream(request)) {
        return { kind: 'json', value: await services.sandboxOps.exec(organizationId, params.id, body) }
      }
      await services.sandboxes.ensureRunning({ organization_id: organizationId }, params.id)
      const events = new EventStream()
      const base64 = (chunk: Buffer) => ({ data: chunk.toString('base64') })
      events.pump(
        async () => {
          const { exit_code, duration_ms, truncated, timed_out } = await services.sandboxOps.exec(organizationId, params.id, body, {
            onStdout: (chunk) => events.send('stdout', base64(chunk)),
            onStderr: (chunk) => events.send('stderr', base64(chunk)),
            signal: events.closed,
          })
          events.send('exit', { exit_code, duration_ms, truncated, timed_out })
        },
        (error) => streamError(error, request.id, request.log),
      )
      return { kind: 'stream', contentType: EventStream.contentType, stream: events.stream, headers: EventStream.headers }
    },
  }),
  defineSocketRoute({
    method: 'GET',
    path: '/sandboxes/:id/exec/ws',
    scope: 'organization',
    tag,
    summary: 'Run a command over a WebSocket, with stdin',
    params: sandboxParams,
    socket: {
      description:
        'The first client message is a text frame with the exec request (as POST /sandboxes/{id}/exec). Then binary frames are stdin, and the text frame {"type":"stdin_end"} closes it. ' +
        'The server sends text frames {"type":"stdout"|"stderr","data":base64}, then {"type":"exit","exit_code","duration_ms","truncated","timed_out"} (or {"type":"error","error":{code,message}}) and closes. Closing the socket aborts the command.',
    },
    check: exists,
    open: async (ctx) => {
      await ctx.services.sandboxes.ensureRunning({ organization_id: ctx.organizationId }, ctx.params.id)
      return execSession(ctx)
    },
  }),
  defineSocketRoute({
    method: 'GET',
    path: '/sandboxes/:id/terminal',
    scope: 'organization',
    tag,
    summary: 'An interactive terminal (PTY) over a WebSocket',
    params: sandboxParams,
    query: terminalQuery,
    socket: {
      description:
        'Binary frames both ways are raw terminal bytes. The text frame {"type":"resize","cols":N,"rows":N} resizes the terminal. Closing either side closes the other; the sandbox stays awake while the terminal is open.',
    },
    check: exists,
    open: async (ctx) => {
      const terminal = await ctx.services.sandboxOps.terminal(ctx.organizationId, ctx.params.id, ctx.query)
      return terminalSession(terminal, ctx)
    },
  }),
]
