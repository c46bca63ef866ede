import { request } from 'node:http'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestDatabase } from '../helpers/postgres.js'
import type { TestDatabase } from '../helpers/postgres.js'
import { startServerProcess } from '../helpers/server-process.js'
import type { ServerProcess } from '../helpers/server-process.js'
import { CLI } from '../helpers/cli.js'
import { spawn } from 'node:child_process'

let dataDir: string

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'miosa-server-'))
})

afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true })
})

/** fetch() will not send a Host header of our choosing; node:http will. */
function getWithHost(url: string, host: string): Promise<{ status: number; contentType: string; text: string }> {
  return new Promise((resolve, reject) => {
    request(url, { headers: { host } }, (res) => {
      let text = ''
      res.on('data', (c: Buffer) => (text += c.toString()))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type']), text }))
    })
      .on('error', reject)
      .end()
  })
}

async function api(server: ServerProcess, method: string, path: string, key: string, body?: unknown) {
  const res = await fetch(`${server.apiUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  return { status: res.status, json: (await res.json()) as any }
}

describe('miosa server with embedded defaults', () => {
  it('says where the API, the edge and the root key are, and serves both listeners', async () => {
    const server = await startServerProcess(['--data-dir', dataDir])
    try {
      const rootKey = server.started.root_key as string
      expect(rootKey).toMatch(/^msk_root_/)
      expect(server.started.store).toBe('sqlite')
      expect(server.started.root_key_file).toBe(join(dataDir, 'root-key'))
      expect((await readFile(join(dataDir, 'root-key'), 'utf8')).trim()).toBe(rootKey)
      expect((await stat(join(dataDir, 'root-key'))).mode & 0o777).toBe(0o600)
      // The root key is printed once on the start line, never in a log line.
      const logLines = server.stdout().split('\n').filter((l) => l.includes('"level"'))
      expect(logLines.length).toBeGreaterThan(0)
      for (const line of logLines) expect(line).not.toContain(rootKey)

      expect(await (await fetch(`${server.apiUrl}/healthz`)).json()).toEqual({ status: 'ok' })
      expect(await (await fetch(`${server.apiUrl}/readyz`)).json()).toEqual({ status: 'ready' })
      const created = await api(server, 'POST', '/api/v1/organizations', rootKey, { name: 'Persisted Org' })
      expect(created.status).toBe(201)

      // The edge answers a 404 page for a host it does not serve.
      const edge = await getWithHost(server.edgeUrl.replace('localhost', '127.0.0.1'), 'nothing.localhost')
      expect(edge.status).toBe(404)
      expect(edge.contentType).toContain('text/html')
      const page = edge.text
      expect(page).toContain('nothing.localhost')
      expect(page.toLowerCase()).not.toContain('miosa')

      // Logs are JSON lines with a request id.
      const requestLog = server.stdout().split('\n').find((l) => l.includes('/api/v1/organizations') && l.includes('request_id'))
      expect(requestLog, server.stdout()).toBeDefined()
      expect(JSON.parse(requestLog as string).request_id).toMatch(/^req_/)
    } finally {
      expect(await server.stop()).toBe(0)
    }
  })

  it('keeps its data and its root key across a restart, without printing the key again', async () => {
    const before = await readFile(join(dataDir, 'root-key'), 'utf8')
    const server = await startServerProcess(['--data-dir', dataDir])
    try {
      expect(server.started.root_key).toBeUndefined()
      expect(await readFile(join(dataDir, 'root-key'), 'utf8')).toBe(before)
      const orgs = await api(server, 'GET', '/api/v1/organizations', before.trim())
      expect(orgs.json.data.map((o: { name: string }) => o.name)).toEqual(['Persisted Org'])
    } finally {
      await server.stop()
    }
  })

  it('finishes an in-flight request on SIGTERM, then exits 0', async () => {
    const rootKey = (await readFile(join(dataDir, 'root-key'), 'utf8')).trim()
    const server = await startServerProcess(['--data-dir', dataDir])
    const url = new URL('/api/v1/organizations', server.apiUrl)
    const body = JSON.stringify({ name: 'Created During Shutdown' })
    // Send half of the body, signal the server, then send the rest.
    const response = new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(url, {
        method: 'POST',
        headers: { authorization: `Bearer ${rootKey}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      })
      req.on('response', (res) => {
        let text = ''
        res.on('data', (c: Buffer) => (text += c.toString()))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
      })
      req.on('error', reject)
      req.write(body.slice(0, 10))
      setTimeout(() => {
        const exit = server.stop('SIGTERM')
        setTimeout(() => req.end(body.slice(10)), 300)
        exit.catch(reject)
      }, 200)
    })
    const res = await response
    expect(res.status, res.text).toBe(201)
    expect(await server.stop()).toBe(0)
    expect(server.stdout()).toContain('"msg":"stopped"')
  })

  it('refuses bad configuration with a message naming the setting', async () => {
    const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [CLI, 'server', '--data-dir', dataDir, '--port', 'eighty'], { stdio: ['ignore', 'pipe', 'pipe'] })
      let stderr = ''
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
      child.on('exit', (code) => resolve({ code, stderr }))
    })
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('--port')
  })
})

describe('miosa server on PostgreSQL (MIOSA_DATABASE_URL)', () => {
  let db: TestDatabase

  beforeAll(async () => {
    db = await createTestDatabase()
  })

  afterAll(async () => {
    await db?.drop()
  })

  it('runs the same code on PostgreSQL, and the data outlives the process', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'miosa-pg-'))
    const rootKey = 'msk_root_from_env_for_the_pg_test_0001'
    try {
      const first = await startServerProcess(['--data-dir', dir], { MIOSA_DATABASE_URL: db.url, MIOSA_ROOT_KEY: rootKey })
      try {
        expect(first.started.root_key).toBeUndefined()
        expect(first.started.store).toBe('postgres')
        const org = await api(first, 'POST', '/api/v1/organizations', rootKey, { name: 'PG Org' })
        expect(org.status).toBe(201)
        const key = await api(first, 'POST', `/api/v1/organizations/${org.json.id}/api-keys`, rootKey, {})
        const ws = await api(first, 'POST', '/api/v1/workspaces', key.json.key, { name: 'PG Workspace', metadata: { tier: 'gold' } })
        expect(ws.status).toBe(201)
        await first.stop()

        const second = await startServerProcess(['--data-dir', dir], { MIOSA_DATABASE_URL: db.url, MIOSA_ROOT_KEY: rootKey })
        try {
          const list = await api(second, 'GET', '/api/v1/workspaces?metadata%5Btier%5D=gold', key.json.key)
          expect(list.json.data.map((w: { name: string }) => w.name)).toEqual(['PG Workspace'])
        } finally {
          await second.stop()
        }
        // Nothing of the store went to the data dir: no SQLite file was created.
        await expect(stat(join(dir, 'miosa.db'))).rejects.toThrow(/ENOENT/)
      } finally {
        await first.stop()
      }
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
