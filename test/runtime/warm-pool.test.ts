import pino from 'pino'
import { describe, expect, it } from 'vitest'
import type { RuntimeRef, WarmKey } from '../../src/runtime/runtime-driver.js'
import { WarmPool } from '../../src/runtime/docker/warm-pool.js'

// The pool's timing policy, with containers that take 30 ms to "start": it refills right
// after a claim, waits while the runtime starts sandboxes cold, and keeps keys apart.
// (test/e2e/sandbox-warm-pool.test.ts runs it on real Docker through the API.)

const key: WarmKey = { organizationId: 'org_a', workspaceId: 'ws_a', template: 'node' }
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function pool(size: number, busy = () => false, maxSize?: number) {
  const started: string[] = []
  const destroyed: string[] = []
  const warm = new WarmPool({
    size,
    ...(maxSize === undefined ? {} : { maxSize }),
    idleMs: 60_000,
    start: async (k, sandboxId) => {
      started.push(`${k.organizationId}/${k.workspaceId}/${k.template}/${sandboxId}`)
      await sleep(30)
      return { driver: 'test', id: `c-${sandboxId}` } satisfies RuntimeRef
    },
    destroy: async (ref) => {
      destroyed.push(ref.id)
    },
    busy,
    logger: pino({ level: 'silent' }),
  })
  return { warm, started, destroyed }
}

describe('WarmPool', () => {
  it('fills on demand, hands a ready container over once, and refills right after the claim', async () => {
    const { warm, started } = pool(2)
    expect(warm.reserve(key)).toBeUndefined() // nothing ready yet: the caller starts one cold,
    warm.demand(key) // then says it did
    await sleep(100)
    expect(started).toHaveLength(2)
    const id = warm.reserve(key) as string
    expect(id).toMatch(/^sbx_/)
    expect(warm.owns(id)).toBe(true)
    expect(warm.claim(id)).toEqual({ driver: 'test', id: `c-${id}` })
    expect(warm.claim(id)).toBeUndefined()
    expect(warm.owns(id)).toBe(false)
    await sleep(200)
    expect(started).toHaveLength(3)
    await warm.close()
  })

  it('keeps one pool per organization, workspace and template', async () => {
    const { warm } = pool(1)
    warm.demand(key)
    await sleep(100)
    expect(warm.reserve({ ...key, organizationId: 'org_b' })).toBeUndefined()
    expect(warm.reserve({ ...key, workspaceId: 'ws_b' })).toBeUndefined()
    expect(warm.reserve({ ...key, template: 'python' })).toBeUndefined()
    expect(warm.reserve(key)).toMatch(/^sbx_/)
    await warm.close()
  })

  it('waits with refills while sandboxes start cold, then refills', async () => {
    let busy = false
    const { warm, started } = pool(2, () => busy)
    warm.demand(key)
    await sleep(100)
    busy = true
    warm.reserve(key)
    warm.reserve(key)
    expect(warm.reserve(key)).toBeUndefined()
    await sleep(200)
    expect(started).toHaveLength(2) // no refill while busy
    busy = false
    warm.refillDeferred()
    await sleep(100)
    expect(started).toHaveLength(4)
    expect(warm.reserve(key)).toMatch(/^sbx_/)
    await warm.close()
  })

  it('grows to the size of a burst, up to its maximum, once the burst has started', async () => {
    let busy = false
    const { warm, started } = pool(2, () => busy, 4)
    warm.demand(key)
    await sleep(100)
    busy = true // six creates at once: two are claims, four start cold
    const burst = Array.from({ length: 6 }, () => warm.reserve(key))
    expect(burst.filter((id) => id !== undefined)).toHaveLength(2)
    expect(warm.target(key)).toBe(4)
    for (let i = 0; i < 4; i++) warm.demand(key) // the cold ones, started
    busy = false
    warm.refillDeferred()
    await sleep(250)
    expect(started).toHaveLength(2 + 4)
    const next = Array.from({ length: 5 }, () => warm.reserve(key))
    expect(next.filter((id) => id !== undefined)).toHaveLength(4)
    await warm.close()
  })

  it('stays at its size when the maximum is not above it', async () => {
    const { warm } = pool(2)
    for (let i = 0; i < 5; i++) warm.reserve(key)
    expect(warm.target(key)).toBe(2)
    await warm.close()
  })

  it('removes every container it holds or has reserved when closed', async () => {
    const { warm, destroyed } = pool(2)
    warm.demand(key)
    await sleep(100)
    const reserved = warm.reserve(key) as string
    await warm.close()
    expect(destroyed).toHaveLength(2)
    expect(destroyed).toContain(`c-${reserved}`)
  })
})
