// The API's cost of quota checks: POST /api/v1/deployments (a cheap creation that passes
// the deployments quota) on two platforms in the same process, one with quotas on (limits
// high enough never to refuse, so every request pays the check: the organization's limits,
// its use counted from the store, under its lock) and one with MIOSA_QUOTAS=off. Sequential
// latency (median, p95, p99) over a keep-alive connection, then throughput with 16
// concurrent connections for a bounded time; two rounds in alternating order.
//
//   npx tsx bench/quotas.ts            (PostgreSQL too when MIOSA_TEST_DATABASE_URL is set)

import { DEFAULT_QUOTA_LIMITS } from '../src/core/quotas.js'
import { createTestDatabase } from '../test/helpers/postgres.js'
import { startTestPlatform } from '../test/helpers/platform.js'
import { measure as measureTarget } from './lib/requests.js'
import type { Measured as Result, Target } from './lib/requests.js'

const SEQUENTIAL = 1000
const CONCURRENCY = 16
const THROUGHPUT_MS = 3000

const measure = (t: Target) => measureTarget(t, { warmup: 100, sequential: SEQUENTIAL, concurrency: CONCURRENCY, throughputMs: THROUGHPUT_MS })

async function platformTarget(label: string, quotas: boolean, databaseUrl?: string): Promise<{ target: Target; close: () => Promise<void> }> {
  const db = databaseUrl === undefined ? undefined : await createTestDatabase()
  const t = await startTestPlatform({
    ...(db === undefined ? {} : { databaseUrl: db.url }),
    quotasEnabled: quotas,
    // Checked on every request, never refusing: the bench creates tens of thousands.
    quotaDefaults: { ...DEFAULT_QUOTA_LIMITS, deployments: 1_000_000_000 },
  })
  const org = await t.newOrganization('Bench Org')
  const ws = await t.call('POST', '/api/v1/workspaces', { key: org.key, body: { name: 'Bench Workspace' } })
  let n = 0
  return {
    target: {
      name: `${label}, quotas ${quotas ? 'on' : 'off'}: POST /api/v1/deployments`,
      url: `${t.apiUrl}/api/v1/deployments`,
      method: 'POST',
      headers: { authorization: `Bearer ${org.key}` },
      body: () => JSON.stringify({ name: `Bench ${n++}`, workspace_id: ws.json.id }),
    },
    close: async () => {
      await t.close()
      await db?.drop()
    },
  }
}

async function compare(label: string, databaseUrl?: string): Promise<Result[]> {
  const on = await platformTarget(label, true, databaseUrl)
  const off = await platformTarget(label, false, databaseUrl)
  // Alternating order, so drift of a shared machine falls on both alike.
  const results = [await measure(off.target), await measure(on.target), await measure(on.target), await measure(off.target)]
  await on.close()
  await off.close()
  return results
}

const results = await compare('sqlite')
if (process.env.MIOSA_TEST_DATABASE_URL) results.push(...(await compare('postgres', process.env.MIOSA_TEST_DATABASE_URL)))

console.log(`\nQuota checks: ${SEQUENTIAL} sequential creations (ms), then ${CONCURRENCY} connections for ${THROUGHPUT_MS / 1000} s; two rounds each\n`)
console.log(['target'.padEnd(56), 'median', '   p95', '   p99', '   req/s'].join('  '))
for (const r of results) {
  console.log([r.name.padEnd(56), r.median.toFixed(2).padStart(6), r.p95.toFixed(2).padStart(6), r.p99.toFixed(2).padStart(6), r.rps.toFixed(0).padStart(8)].join('  '))
}
for (const label of ['sqlite', 'postgres']) {
  const of = (quotas: string) => results.filter((r) => r.name.startsWith(`${label}, quotas ${quotas}`))
  const [on, off] = [of('on'), of('off')]
  if (on.length === 0) continue
  const mean = (rs: Result[], f: (r: Result) => number) => rs.reduce((sum, r) => sum + f(r), 0) / rs.length
  console.log(
    `${label}: quotas on / off = ${(mean(on, (r) => r.rps) / mean(off, (r) => r.rps)).toFixed(2)}x req/s, ` +
      `median latency ${mean(on, (r) => r.median).toFixed(2)} vs ${mean(off, (r) => r.median).toFixed(2)} ms`,
  )
}
