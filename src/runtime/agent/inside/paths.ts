// Paths from requests, and the ownership and descriptions of what they name.

import type { Stats } from 'node:fs'
import { chown, lstat, mkdir, readlink, stat } from 'node:fs/promises'
import { basename, dirname, resolve } from 'node:path'
import type { FileStat } from '../protocol.js'
import { WORKSPACE, config } from './config.js'
import { invalid } from './http.js'

export function resolvePath(value: unknown, name: string): string {
  if (typeof value !== 'string' || value === '') throw invalid(`${name} must be a non-empty path`)
  if (value.includes('\0')) throw invalid(`${name} contains a NUL byte`)
  return resolve(WORKSPACE, value)
}

export function pathParam(query: URLSearchParams): string {
  return resolvePath(query.get('path') ?? '', 'path')
}

export function modeParam(query: URLSearchParams): number | undefined {
  const mode = query.get('mode')
  if (mode === null || mode === '') return undefined
  if (!/^[0-7]{1,4}$/.test(mode)) throw invalid(`mode must be octal permission bits like 644: ${mode}`)
  return Number.parseInt(mode, 8)
}

/** mkdir -p, giving every directory it creates to the owner. */
export async function ensureDir(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true })
  if (first === undefined || config.owner === undefined) return
  // mkdir answers the topmost directory it created: everything from there down to dir is new.
  for (let d = dir; ; d = dirname(d)) {
    await chown(d, config.owner.uid, config.owner.gid)
    if (d === first || d === dirname(d)) break
  }
}

export async function statIfAny(path: string, follow: boolean): Promise<Stats | undefined> {
  try {
    return follow ? await stat(path) : await lstat(path)
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return undefined
    throw error
  }
}

function typeOf(s: Stats): FileStat['type'] {
  if (s.isFile()) return 'file'
  if (s.isDirectory()) return 'dir'
  if (s.isSymbolicLink()) return 'symlink'
  return 'other'
}

export async function describe(path: string, known?: Stats): Promise<FileStat> {
  const s = known ?? (await lstat(path))
  const type = typeOf(s)
  const result: FileStat = { name: basename(path) || '/', path, type, size: s.size, mode: s.mode & 0o777, mtime: s.mtime.toISOString() }
  if (type === 'symlink') result.target = await readlink(path)
  return result
}
