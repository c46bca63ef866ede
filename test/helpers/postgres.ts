import { randomBytes } from 'node:crypto'
import pg from 'pg'

// A fresh PostgreSQL database per suite, on the server scripts/test starts.
// Never skipped: a store that only passes on SQLite is not done.

export function adminUrl(): string {
  const url = process.env.MIOSA_TEST_DATABASE_URL
  if (url === undefined || url === '') {
    throw new Error('MIOSA_TEST_DATABASE_URL is not set: run ./scripts/test, which installs and starts PostgreSQL')
  }
  return url
}

export interface TestDatabase {
  url: string
  drop(): Promise<void>
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `miosa_test_${randomBytes(6).toString('hex')}`
  const admin = new pg.Client({ connectionString: adminUrl() })
  await admin.connect()
  try {
    await admin.query(`CREATE DATABASE ${name}`)
  } finally {
    await admin.end()
  }
  const url = new URL(adminUrl())
  url.pathname = `/${name}`
  return {
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: adminUrl() })
      await client.connect()
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      } finally {
        await client.end()
      }
    },
  }
}
