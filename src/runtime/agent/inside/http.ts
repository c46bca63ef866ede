// HTTP plumbing shared by the agent's routes: the protocol's errors, JSON in and out, NDJSON.

import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Readable } from 'node:stream'
import type { AgentError } from '../protocol.js'

const LINE_LIMIT = 16 * 1024 * 1024

type ErrorCode = AgentError['error']['code']

export class Failure extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message)
  }
}

export const invalid = (message: string) => new Failure(400, 'invalid', message)
export const forbidden = (path: string) => new Failure(403, 'forbidden', `permission denied: ${path} (the sandbox user may not access it)`)

export function die(message: string): never {
  process.stderr.write(`miosa agent: ${message}\n`)
  process.exit(2)
}

export function log(fields: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...fields })}\n`)
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

export function sendError(res: ServerResponse, error: unknown): void {
  // Once the body has begun, only a broken connection tells the platform it is incomplete.
  if (res.headersSent) {
    res.destroy()
    return
  }
  const failure = fsFailure(error)
  if (failure.status >= 500) log({ level: 'error', msg: 'request failed', error: String((error as Error).stack ?? error) })
  const body: AgentError = { error: { code: failure.code, message: failure.message } }
  sendJson(res, failure.status, body)
}

/** Node's errno errors as the protocol's statuses. */
export function fsFailure(error: unknown): Failure {
  if (error instanceof Failure) return error
  const { code, path, dest } = error as { code?: string; path?: string; dest?: string }
  const where = path === undefined ? '' : `: ${path}${dest === undefined ? '' : ` -> ${dest}`}`
  switch (code) {
    case 'ENOENT':
      return new Failure(404, 'not_found', `no such file or directory${where}`)
    case 'EEXIST':
      return new Failure(409, 'conflict', `already exists${where}`)
    case 'ENOTEMPTY':
      return new Failure(409, 'conflict', `directory not empty${where}`)
    case 'EISDIR':
      return invalid(`is a directory${where}`)
    case 'ENOTDIR':
      return invalid(`not a directory${where}`)
    case 'ENAMETOOLONG':
      return invalid(`name too long${where}`)
    case 'ELOOP':
      return invalid(`too many levels of symbolic links${where}`)
    case 'EINVAL':
      return invalid(`invalid argument${where}`)
    case 'EACCES':
    case 'EPERM':
      return new Failure(403, 'forbidden', `permission denied${where}`)
    case 'EROFS':
      return invalid(`read-only file system${where}`)
    case 'ENOSPC':
    case 'EDQUOT':
      // The sandbox's disk (or its /tmp) is full: the write is too large for what is left.
      return new Failure(413, 'payload_too_large', `no space left on the device${where}`)
    case 'EBUSY':
      return new Failure(409, 'conflict', `resource busy${where}`)
    default:
      return new Failure(500, 'internal', error instanceof Error ? error.message : String(error))
  }
}

export async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > limit) throw invalid(`request body over ${limit} bytes`)
    chunks.push(chunk)
  }
  return parseJson(Buffer.concat(chunks))
}

function parseJson(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown
  } catch {
    throw invalid('request body is not JSON')
  }
}

export function objectBody(value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid('request body must be a JSON object')
  return value as Record<string, unknown>
}

/** NDJSON values of a byte stream. */
export async function* ndjson(stream: Readable): AsyncGenerator<unknown> {
  let buffer: Buffer = Buffer.alloc(0)
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk])
    let newline: number
    while ((newline = buffer.indexOf(10)) !== -1) {
      const line = buffer.subarray(0, newline)
      buffer = buffer.subarray(newline + 1)
      if (line.length > 0) yield parseJson(line)
    }
    if (buffer.length > LINE_LIMIT) throw invalid(`NDJSON line over ${LINE_LIMIT} bytes`)
  }
  if (buffer.length > 0) yield parseJson(buffer)
}
