import pg from 'pg'

// The HTTP API of a platform running as its own process (server-process.ts), as a client
// reaches it, and what a test or bench needs first: an organization's key, the platform id.

/** One API call with `key`; answers the parsed JSON, throws with the status and body unless 2xx. */
export async function callApi(apiUrl: string, key: string, method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(`${apiUrl}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await res.text()
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`)
  return JSON.parse(text)
}

/** A new organization made with the root key, and a key of it. */
export async function newOrganizationKey(apiUrl: string, rootKey: string, name: string): Promise<string> {
  const org = await callApi(apiUrl, rootKey, 'POST', '/organizations', { name })
  return (await callApi(apiUrl, rootKey, 'POST', `/organizations/${org.id}/api-keys`, { name: 'test' })).key as string
}

/** The platform id a server stored in its PostgreSQL database (every container it makes carries it). */
export async function platformIdOf(databaseUrl: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  try {
    return (await client.query("SELECT value FROM settings WHERE key = 'platform_id'")).rows[0]?.value
  } finally {
    await client.end()
  }
}
