// Archives: GNU tar, which every template image has.

import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { stat } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { constants } from 'node:os'
import { Failure, invalid } from './http.js'
import { ensureDir } from './paths.js'

export async function sendArchive(res: ServerResponse, dir: string): Promise<void> {
  const s = await stat(dir)
  if (!s.isDirectory()) throw invalid(`not a directory: ${dir}`)
  const tar = spawn('tar', ['-c', '-f', '-', '-C', dir, '.'], { stdio: ['ignore', 'pipe', 'pipe'] })
  const stderr = tail(tar)
  res.on('close', () => {
    if (!res.writableFinished) tar.kill('SIGKILL')
  })
  const start = () => {
    if (!res.headersSent) res.writeHead(200, { 'content-type': 'application/x-tar' })
  }
  tar.stdout.on('data', (chunk: Buffer) => {
    start()
    if (!res.write(chunk)) {
      tar.stdout.pause()
      res.once('drain', () => tar.stdout.resume())
    }
  })
  const code = await exitOf(tar)
  // 1 is "a file changed as it was read": the archive is still whole.
  if (code === 0 || code === 1) {
    start()
    res.end()
  } else if (res.headersSent) {
    res.destroy()
  } else {
    throw new Failure(500, 'internal', `tar failed (${code}): ${stderr()}`)
  }
}

export async function extractArchive(req: IncomingMessage, dir: string): Promise<void> {
  await ensureDir(dir)
  const s = await stat(dir)
  if (!s.isDirectory()) throw invalid(`not a directory: ${dir}`)
  // As the sandbox user (./file-server.ts) or root: either way, no owner is taken from the archive.
  const tar = spawn('tar', ['-x', '-f', '-', '-C', dir, '--no-same-owner'], { cwd: dir, stdio: ['pipe', 'ignore', 'pipe'] })
  const stderr = tail(tar)
  tar.stdin.on('error', () => {}) // EPIPE when tar stops reading a bad archive
  req.on('error', () => tar.kill('SIGKILL'))
  req.on('aborted', () => tar.kill('SIGKILL'))
  req.pipe(tar.stdin)
  const code = await exitOf(tar)
  if (code !== 0) throw invalid(`tar could not extract the archive (${code}): ${stderr()}`)
}

/** The last few KiB a child wrote to stderr. */
function tail(child: ChildProcess): () => string {
  let text = ''
  child.stderr?.on('data', (chunk: Buffer) => {
    text = (text + chunk.toString('utf8')).slice(-4096)
  })
  return () => text.trim()
}

function exitOf(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    child.on('error', (error) => reject(new Failure(500, 'internal', `cannot run tar: ${error.message}`)))
    child.on('close', (code, signal) => resolve(code ?? 128 + (signal === null ? 0 : (constants.signals[signal] ?? 0))))
  })
}
