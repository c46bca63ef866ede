import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { PlatformEvent, PlatformEvents } from '../../src/core/platform-events.js'
import { InProcessEvents } from '../../src/fleet/in-process-events.js'
import { openPostgresEvents, type PostgresEvents } from '../../src/fleet/postgres-events.js'
import { createTestDatabase } from '../helpers/postgres.js'
import { adminQuery, type Member, startMember, stopMember, waitFor } from './fleet-helpers.js'

// One contract for every PlatformEvents: what a subscriber (an edge's route cache, a
// reaper's activity table) relies on. "Another process" is, in one process, a second
// subscriber of the same bus; on PostgreSQL, a second PostgresEvents on the same database,
// which shares nothing with the first but the database. PostgreSQL is never skipped.

interface Fleet {
  /** Events of one process of the fleet (in-process: always the one bus). */
  member(options?: { heartbeatMs?: number }): Promise<PlatformEvents>
  /** What the implementations reported to their error callback. */
  errors: { error: unknown; context: string }[]
  /** The database, for a child process (PostgreSQL only). */
  url?: string
  /** Cuts the session `events` listens on, as a lost connection would (PostgreSQL only). */
  cutListening?(events: PlatformEvents): Promise<void>
  cutPublishing?(events: PlatformEvents): Promise<void>
  /** Stops the server process of the session `events` listens on (SIGSTOP): it neither answers nor closes. Returns how to resume it. */
  freezeListening?(events: PlatformEvents): Promise<() => void>
  close(): Promise<void>
}

interface Implementation {
  name: string
  childArg: string
  open(): Promise<Fleet>
  /** Why the cases about a transport do not apply, if they do not. */
  noTransport?: string
}

const implementations: Implementation[] = [
  {
    name: 'in-process',
    childArg: 'in-process',
    noTransport: 'in one process nothing between publisher and subscriber can drop, echo or limit an event',
    async open() {
      const errors: Fleet['errors'] = []
      const bus = new InProcessEvents((error) => errors.push({ error, context: 'listener' }))
      return { errors, member: async () => bus, close: () => bus.close() }
    },
  },
  {
    name: 'postgres',
    childArg: 'postgres',
    async open() {
      const database = await createTestDatabase()
      const errors: Fleet['errors'] = []
      const members: PostgresEvents[] = []
      const backendOf = async (applicationName: string): Promise<number> => {
        const rows = await adminQuery<{ pid: number }>(
          database.url,
          'SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()',
          [applicationName],
        )
        expect(rows).toHaveLength(1)
        return rows[0]?.pid ?? 0
      }
      const terminate = async (applicationName: string): Promise<void> => {
        const rows = await adminQuery<{ ok: boolean }>(
          database.url,
          'SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()',
          [applicationName],
        )
        expect(rows).toEqual([{ ok: true }])
      }
      return {
        errors,
        url: database.url,
        async member(options) {
          const events = await openPostgresEvents({
            connection: database.url,
            onError: (error, context) => errors.push({ error, context }),
            backoff: { initialMs: 50 },
            ...options,
          })
          members.push(events)
          return events
        },
        cutListening: (events) => terminate(`miosa-events ${(events as PostgresEvents).origin}`),
        cutPublishing: (events) => terminate(`miosa-events-publish ${(events as PostgresEvents).origin}`),
        async freezeListening(events) {
          // PostgreSQL runs on this machine (scripts/test), and the tests run as root.
          const pid = await backendOf(`miosa-events ${(events as PostgresEvents).origin}`)
          process.kill(pid, 'SIGSTOP')
          return () => process.kill(pid, 'SIGCONT')
        },
        async close() {
          await Promise.all(members.map((events) => events.close()))
          await database.drop()
        },
      }
    },
  },
]

function changed(sandboxId: string): PlatformEvent {
  return { type: 'sandbox.changed', sandboxId }
}

function collect(events: PlatformEvents): PlatformEvent[] {
  const seen: PlatformEvent[] = []
  events.subscribe((event) => seen.push(event))
  return seen
}

for (const implementation of implementations) {
  describe(`PlatformEvents contract: ${implementation.name}`, () => {
    let fleet: Fleet
    let child: Member | undefined
    const transportOnly = (name: string, fn: () => Promise<void>, timeout?: number): void => {
      if (implementation.noTransport === undefined) it(name, fn, timeout)
      else it.skip(`${name} (skipped: ${implementation.noTransport})`, fn)
    }

    beforeEach(async () => {
      fleet = await implementation.open()
    })

    afterEach(async () => {
      await stopMember(child)
      child = undefined
      await fleet.close()
    })

    it("a publisher's own subscribers have the event when publish resolves, and only once", async () => {
      const a = await fleet.member()
      const b = await fleet.member()
      const own = collect(a)
      const there = collect(b)
      await a.publish(changed('sbx_first'))
      expect(own).toEqual([changed('sbx_first')])
      await waitFor('the other process has the first event', () => there.length === 1)
      // The other process answers; by the time its answer reaches us, our own echo has too.
      await b.publish(changed('sbx_answer'))
      await waitFor('the answer comes back', () => own.length >= 2)
      expect(own).toEqual([changed('sbx_first'), changed('sbx_answer')])
    })

    it('another process sees the event within a bounded wait', async () => {
      const a = await fleet.member()
      const b = await fleet.member()
      const there = collect(b)
      const event: PlatformEvent = { type: 'route.changed', deploymentId: 'dep_1', environment: 'production', staticReleaseSha256: null }
      await a.publish(event)
      const ms = await waitFor('the other process has the event', () => there.length === 1, 1000)
      expect(there).toEqual([event])
      console.log(`${implementation.name}: another process had the event ${ms} ms after publish resolved`)
    })

    it("keeps one publisher's order over 200 events published at once", async () => {
      const a = await fleet.member()
      const b = await fleet.member()
      const own = collect(a)
      const there = collect(b)
      const sent = Array.from({ length: 200 }, (_, i) => changed(`sbx_${i}`))
      await Promise.all(sent.map((event) => a.publish(event)))
      expect(own).toEqual(sent)
      await waitFor('the other process has all 200', () => there.length >= 200, 5000)
      expect(there).toEqual(sent)
    })

    it('stops delivering to a listener that unsubscribed', async () => {
      const a = await fleet.member()
      const b = await fleet.member()
      const gone: PlatformEvent[] = []
      const unsubscribe = b.subscribe((event) => gone.push(event))
      const stays = collect(b)
      const ownGone: PlatformEvent[] = []
      a.subscribe((event) => ownGone.push(event))()
      unsubscribe()
      await a.publish(changed('sbx_after'))
      await waitFor('the listener still subscribed has it', () => stays.length === 1)
      expect(gone).toEqual([])
      expect(ownGone).toEqual([])
    })

    it('a throwing listener neither keeps the event from the others nor fails the publish', async () => {
      const a = await fleet.member()
      const b = await fleet.member()
      const boom = new Error('a subscriber bug')
      a.subscribe(() => {
        throw boom
      })
      b.subscribe(() => {
        throw boom
      })
      const own = collect(a)
      const there = collect(b)
      await a.publish(changed('sbx_boom'))
      expect(own).toEqual([changed('sbx_boom')])
      await waitFor('the other process delivers past the throwing listener', () => there.length === 1)
      await waitFor('the error is reported', () => fleet.errors.filter((reported) => reported.error === boom).length >= 2)
    })

    it('a long activity report arrives complete', async () => {
      const a = await fleet.member()
      const b = await fleet.member()
      const own = collect(a)
      const there = collect(b)
      // About 70 KB of ids: many times what one notification carries.
      const event: PlatformEvent = {
        type: 'sandbox.activity',
        sandboxIds: Array.from({ length: 2000 }, (_, i) => `sbx_${String(i).padStart(26, '0')}`),
        held: Array.from({ length: 300 }, (_, i) => `sbx_held_${String(i).padStart(21, '0')}`),
      }
      await a.publish(event)
      expect(own).toEqual([event])
      const activity = (): Extract<PlatformEvent, { type: 'sandbox.activity' }>[] =>
        there.filter((received) => received.type === 'sandbox.activity')
      await waitFor('every part arrived', () => activity().flatMap((part) => part.sandboxIds).length + activity().flatMap((part) => part.held).length >= 2300)
      expect(activity().flatMap((part) => part.sandboxIds)).toEqual(event.sandboxIds)
      expect(activity().flatMap((part) => part.held)).toEqual(event.held)
    })

    transportOnly('after its listening session is cut, a process reconnects, reports a gap, and gets later events', async () => {
      const a = await fleet.member()
      const b = await fleet.member()
      const there = collect(b)
      let gaps = 0
      b.onGap(() => {
        gaps += 1
      })
      await fleet.cutListening?.(b)
      const ms = await waitFor('a gap is reported', () => gaps === 1, 3000)
      await a.publish(changed('sbx_later'))
      await waitFor('the event after the gap arrives', () => there.length === 1)
      expect(there).toEqual([changed('sbx_later')])
      // A second loss is handled as the first (the backoff started over).
      await fleet.cutListening?.(b)
      await waitFor('a second gap', () => gaps === 2, 3000)
      await a.publish(changed('sbx_again'))
      await waitFor('the event after the second gap arrives', () => there.length === 2)
      console.log(`${implementation.name}: gap reported ${ms} ms after the listening session was cut`)
    })

    transportOnly('a listening session that stops answering (no error, no close) is replaced after its heartbeat', async () => {
      const a = await fleet.member()
      const b = await fleet.member({ heartbeatMs: 300 })
      const there = collect(b)
      let gaps = 0
      b.onGap(() => {
        gaps += 1
      })
      const thaw = (await fleet.freezeListening?.(b)) ?? (() => {})
      try {
        await waitFor('a gap is reported', () => gaps === 1, 3000)
      } finally {
        // The frozen server process then finds its client gone and ends.
        thaw()
      }
      await a.publish(changed('sbx_after_freeze'))
      await waitFor('the event after the gap arrives', () => there.length === 1)
      expect(there).toEqual([changed('sbx_after_freeze')])
    })

    transportOnly('a publish after the publishing session was cut still arrives', async () => {
      const a = await fleet.member()
      const b = await fleet.member()
      const there = collect(b)
      await a.publish(changed('sbx_before'))
      await fleet.cutPublishing?.(a)
      await a.publish(changed('sbx_after'))
      await waitFor('both events arrive', () => there.some((event) => event.type === 'sandbox.changed' && event.sandboxId === 'sbx_after'))
      expect(there[0]).toEqual(changed('sbx_before'))
    })

    transportOnly('an event too large for a notification is refused before anyone sees it', async () => {
      const a = await fleet.member()
      const b = await fleet.member()
      const own = collect(a)
      const there = collect(b)
      await expect(a.publish({ type: 'tenant.changed', workspaceId: `ws_${'x'.repeat(9000)}` })).rejects.toMatchObject({
        code: 'payload_too_large',
        message: expect.stringContaining('tenant.changed'),
      })
      await a.publish(changed('sbx_marker'))
      await waitFor('the marker arrives', () => there.length === 1)
      expect(there).toEqual([changed('sbx_marker')])
      expect(own).toEqual([changed('sbx_marker')])
    })

    transportOnly('a notification that is not an event is ignored and reported, and delivery goes on', async () => {
      const a = await fleet.member()
      const b = await fleet.member()
      const there = collect(b)
      await adminQuery(fleet.url ?? '', "SELECT pg_notify('miosa_events', 'not an event'), pg_notify('miosa_events', '{\"o\":\"x\",\"e\":{\"type\":\"from.the.future\"}}')")
      await a.publish(changed('sbx_fine'))
      await waitFor('the real event arrives', () => there.length === 1)
      expect(there).toEqual([changed('sbx_fine')])
      expect(fleet.errors.map((reported) => reported.context)).toContain('events: ignored a notification on miosa_events')
    })

    it('close() leaves nothing open: a process that used the events exits on its own', async () => {
      child = startMember(['exit-events', implementation.childArg, fleet.url ?? ''])
      const started = child
      await waitFor('the child closed its events', () => started.lines.includes('closed') || started.child.exitCode !== null, 20_000)
      const code = await Promise.race([started.exited, new Promise((resolve) => setTimeout(() => resolve('still running 3 s after close'), 3000))])
      expect(code, started.stderr()).toBe(0)
    }, 30_000)
  })
}
