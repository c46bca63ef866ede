import { request } from 'node:http'
import type { Agent } from 'node:http'
import type { TestPlatform } from './platform.js'

// What end-to-end tests of apps do again and again: call the API as an organization, write
// files into a sandbox's /workspace, and GET an app through the edge by the hostname of a
// URL the API handed out (the test resolves it to the edge on loopback, as DNS would).

/** An API call as `key`: answers the JSON, throws with the status and body on an error. `seen` collects every body. */
export async function callApi(t: TestPlatform, key: string, method: string, path: string, body?: unknown, seen?: string[]): Promise<any> {
  const res = await t.call(method, `/api/v1${path}`, { key, body })
  seen?.push(res.text)
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${res.text}`)
  return res.json
}

/** Writes each file (paths relative to /workspace) into the sandbox through the files API. */
export async function writeWorkspace(t: TestPlatform, key: string, sandboxId: string, files: Record<string, string>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    const res = await t.call('PUT', `/api/v1/sandboxes/${sandboxId}/files?path=${encodeURIComponent(`/workspace/${path}`)}`, {
      key,
      rawBody: content,
      headers: { 'content-type': 'application/octet-stream' },
    })
    if (res.status !== 200) throw new Error(`writing /workspace/${path}: ${res.status} ${res.text}`)
  }
}

/** Empties the sandbox's /workspace (templates come with a starter app) for a test that brings its own files. */
export async function emptyWorkspace(t: TestPlatform, key: string, sandboxId: string): Promise<void> {
  const res = await t.call('POST', `/api/v1/sandboxes/${sandboxId}/exec`, { key, body: { cmd: 'find /workspace -mindepth 1 -delete' } })
  if (res.status !== 200 || res.json.exit_code !== 0) throw new Error(`emptying /workspace: ${res.status} ${res.text}`)
}

export interface EdgeAnswer {
  status: number
  body: string
  headers: Record<string, string | string[] | undefined>
}

/** GET `path` of the app at `url` (a URL the API answered) through the edge of `t`. */
export function getViaEdge(t: TestPlatform, url: string, o: { path?: string; agent?: Agent; timeoutMs?: number } = {}): Promise<EdgeAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: Number(new URL(t.edgeUrl).port), path: o.path ?? '/', headers: { host: new URL(url).host }, ...(o.agent === undefined ? {} : { agent: o.agent }) },
      (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (c: string) => (body += c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }))
      },
    )
    req.setTimeout(o.timeoutMs ?? 10_000, () => req.destroy(new Error('request timed out')))
    req.on('error', reject)
    req.end()
  })
}
