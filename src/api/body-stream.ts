import { Readable, Transform } from 'node:stream'
import type { TransformCallback } from 'node:stream'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { MiosaError } from '../core/errors.js'
import type { BodyStream } from './route.js'

// Request bodies that are bytes, not JSON (file uploads, tar archives): handed to the
// route as the request stream itself, never buffered whole, and cut off at the route's
// own size limit. JSON routes keep their strict parser; these parsers live only in the
// encapsulated context of a raw route.

/** Registers parsers that pass the request stream through untouched, for the given media types. */
export function passThroughBodies(app: FastifyInstance, spec: BodyStream): void {
  app.removeAllContentTypeParsers()
  const passThrough = (_request: FastifyRequest, payload: NodeJS.ReadableStream, done: (err: Error | null, body?: unknown) => void) =>
    done(null, payload)
  if (spec.contentTypes === '*') app.addContentTypeParser('*', passThrough)
  else for (const type of spec.contentTypes) app.addContentTypeParser(type, passThrough)
}

export function tooLarge(limitBytes: number): MiosaError {
  return new MiosaError('payload_too_large', `body: larger than the ${limitBytes}-byte limit of this route`, {
    details: { field: 'body', limit_bytes: limitBytes },
  })
}

/** A byte stream of the request body that fails with payload_too_large past the limit. */
export class LimitedBody extends Transform {
  private seen = 0
  /** Set once the limit was passed: the reason to report, whatever error the consumer saw. */
  exceeded: MiosaError | undefined

  constructor(private readonly limitBytes: number) {
    super()
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.seen += chunk.length
    if (this.seen > this.limitBytes) {
      this.exceeded = tooLarge(this.limitBytes)
      callback(this.exceeded)
      return
    }
    callback(null, chunk)
  }
}

/** The request body as a limited stream; a declared Content-Length beyond the limit is refused before reading. */
export function streamBody(spec: BodyStream, request: FastifyRequest): LimitedBody {
  const declared = Number(request.headers['content-length'])
  if (Number.isFinite(declared) && declared > spec.limitBytes) throw tooLarge(spec.limitBytes)
  const limited = new LimitedBody(spec.limitBytes)
  const source = request.body
  if (source instanceof Readable) {
    source.on('error', (error) => limited.destroy(error))
    source.pipe(limited)
  } else {
    limited.end() // no body at all: an empty one
  }
  return limited
}

/** Runs `use` on the body; when it fails because the body passed its limit, that is the error reported. */
export async function withLimit<T>(body: LimitedBody, use: () => Promise<T>): Promise<T> {
  try {
    return await use()
  } catch (error) {
    throw body.exceeded ?? error
  } finally {
    // Whatever the consumer left unread is drained, so the connection can answer.
    if (!body.readableEnded) body.resume()
  }
}
