import { MiosaError } from '../core/errors.js'

// Reading streamed answers with nothing but web streams, so it runs in browsers too:
// server-sent events (exec) and NDJSON (template builds).

export interface ServerSentEvent {
  event: string
  data: string
}

async function* lines(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const reader = body.getReader()
  const decoder = new TextDecoder()
  let buffered = ''
  try {
    for (;;) {
      const { done, value } = await reader.read()
      buffered += done ? decoder.decode() : decoder.decode(value, { stream: true })
      let at: number
      while ((at = buffered.indexOf('\n')) >= 0) {
        yield buffered.slice(0, at).replace(/\r$/, '')
        buffered = buffered.slice(at + 1)
      }
      if (done) {
        if (buffered !== '') yield buffered
        return
      }
    }
  } finally {
    reader.releaseLock()
  }
}

/** Events of a text/event-stream body (comments skipped; multi-line data joined with newlines). */
export async function* readServerSentEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<ServerSentEvent> {
  let event = 'message'
  let data: string[] = []
  for await (const line of lines(body)) {
    if (line === '') {
      if (data.length > 0) yield { event, data: data.join('\n') }
      event = 'message'
      data = []
    } else if (line.startsWith(':')) {
      continue
    } else {
      const colon = line.indexOf(':')
      const field = colon < 0 ? line : line.slice(0, colon)
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
      if (field === 'event') event = value
      else if (field === 'data') data.push(value)
    }
  }
  if (data.length > 0) yield { event, data: data.join('\n') }
}

/** One parsed JSON document per non-empty line. */
export async function* readNdjson(body: ReadableStream<Uint8Array>): AsyncGenerator<unknown> {
  for await (const line of lines(body)) {
    if (line.trim() === '') continue
    try {
      yield JSON.parse(line)
    } catch {
      throw new MiosaError('internal', `the server sent a line that is not JSON: ${line.slice(0, 200)}`)
    }
  }
}

export function decodeBase64(text: string): Uint8Array {
  const binary = atob(text)
  const bytes = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
  return bytes
}

/** The body of a response that must have one. */
export function bodyOf(response: Response): ReadableStream<Uint8Array> {
  if (response.body === null) throw new MiosaError('internal', 'the server answered without a body')
  return response.body
}
