// API request cost: an authenticated read (key lookup + scoped get + response schema)
// and a create, on SQLite and on PostgreSQL, against a peer in the same process: a bare
// node:http server answering the same JSON. Sequential latency (median, p95, p99) over a
// keep-alive connection, then throughput with 16 concurrent connections for a bounded time.
//
//   npx tsx bench/api.ts            (PostgreSQL too when MIOSA_TEST_DATABASE_URL is set)

import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createTestDatabase } from '../test/helpers/postgres.js'
import { startTestPlatform } from '../test/helpers/platform.js'
import { measure as measureTarget } from './lib/requests.js'
import type { Target } from './lib/requests.js'

const SEQUENTIAL = 2000
const CONCURRENCY = 16
const THROUGHPUT_MS = 3000

const measure = (t: Target) => measureTarget(t, { warmup: 200, sequential: SEQUENTIAL, concurrency: CONCURRENCY, throughputMs: THROUGHPUT_MS })

async function platformTargets(label: string, databaseUrl?: string): Promise<{ targets: Target[]; close: () => Promise<void>; sample: string }> {
  const db = databaseUrl === undefined ? undefined : await createTestDatabase()
  const t = await startTestPlatform(db === undefined ? {} : { databaseUrl: db.url })
  const org = await t.newOrganization('Bench Org')
  const ws = await t.call('POST', '/api/v1/workspaces', { key: org.key, body: { name: 'Bench Workspace', metadata: { plan: 'pro' } } })
  const auth = { authorization: `Bearer ${org.key}` }
  let n = 0
  return {
    sample: ws.text,
    targets: [
      { name: `${label}: GET /api/v1/workspaces/:id`, url: `${t.apiUrl}/api/v1/workspaces/${ws.json.id}`, method: 'GET', headers: auth },
      { name: `${label}: POST /api/v1/workspaces`, url: `${t.apiUrl}/api/v1/workspaces`, method: 'POST', headers: auth, body: () => JSON.stringify({ name: `Bench ${n++}` }) },
    ],
    close: async () => {
      await t.close()
      await db?.drop()
    },
  }
}

const sqlite = await platformTargets('sqlite')
// The peer: the same JSON document from a bare node:http handler, no auth, no store.
const peer = createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end(sqlite.sample)
})
await new Promise<void>((r) => peer.listen(0, '127.0.0.1', r))
const peerUrl = `http://127.0.0.1:${(peer.address() as AddressInfo).port}/`

const results = [await measure({ name: 'peer: bare node:http, same JSON', url: peerUrl, method: 'GET', headers: {} })]
for (const target of sqlite.targets) results.push(await measure(target))
await sqlite.close()
if (process.env.MIOSA_TEST_DATABASE_URL) {
  const pg = await platformTargets('postgres', process.env.MIOSA_TEST_DATABASE_URL)
  for (const target of pg.targets) results.push(await measure(target))
  await pg.close()
}
peer.close()

const peerRps = results[0]?.rps ?? 1
console.log(`\nAPI request cost: ${SEQUENTIAL} sequential requests (ms), then ${CONCURRENCY} connections for ${THROUGHPUT_MS / 1000} s\n`)
console.log(['target'.padEnd(44), 'median', '   p95', '   p99', '   req/s', ' vs peer'].join('  '))
for (const r of results) {
  console.log(
    [r.name.padEnd(44), r.median.toFixed(2).padStart(6), r.p95.toFixed(2).padStart(6), r.p99.toFixed(2).padStart(6), r.rps.toFixed(0).padStart(8), `${(r.rps / peerRps).toFixed(2)}x`.padStart(8)].join('  '),
  )
}
