import { setTimeout as sleep } from 'node:timers/promises'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Campaign, Leadership } from '../../src/core/leadership.js'
import { openPostgresLeadership, type PostgresLeadership } from '../../src/fleet/postgres-leadership.js'
import { SingleLeadership } from '../../src/fleet/single-leadership.js'
import { createTestDatabase } from '../helpers/postgres.js'
import { adminQuery, type Member, startMember, stopMember, waitFor } from './fleet-helpers.js'

// One contract for every Leadership: what a reconciler that must run in one place relies
// on. A "member" is one process of the fleet: on PostgreSQL a Leadership of its own (its
// own session), in one process always the same Leadership. PostgreSQL is never skipped.

interface Fleet {
  member(options?: { heartbeatMs?: number }): Promise<Leadership>
  errors: { error: unknown; context: string }[]
  url?: string
  /** Ends the PostgreSQL session that holds a leadership lock (PostgreSQL only). */
  cutLeader?(): Promise<void>
  /** Stops the server process of the leader's session (SIGSTOP): it neither answers nor closes. Returns how to resume it. */
  freezeLeader?(): Promise<() => void>
  close(): Promise<void>
}

interface Implementation {
  name: string
  childArg: string
  open(): Promise<Fleet>
  /** Why the cases about sessions and other processes do not apply, if they do not. */
  oneProcess?: string
}

const LEADER_LOCK = "locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"

const implementations: Implementation[] = [
  {
    name: 'single',
    childArg: 'single',
    oneProcess: 'one process has no session to lose and no other process to hand over to',
    async open() {
      const errors: Fleet['errors'] = []
      const leadership = new SingleLeadership({ onError: (error, context) => errors.push({ error, context }) })
      return { errors, member: async () => leadership, close: () => leadership.close() }
    },
  },
  {
    name: 'postgres',
    childArg: 'postgres',
    async open() {
      const database = await createTestDatabase()
      const errors: Fleet['errors'] = []
      const members: PostgresLeadership[] = []
      return {
        errors,
        url: database.url,
        async member(options) {
          const leadership = await openPostgresLeadership({
            connection: database.url,
            onError: (error, context) => errors.push({ error, context }),
            backoff: { initialMs: 50 },
            ...options,
          })
          members.push(leadership)
          return leadership
        },
        async cutLeader() {
          const rows = await adminQuery<{ ok: boolean }>(database.url, `SELECT pg_terminate_backend(pid) AS ok FROM pg_locks WHERE ${LEADER_LOCK}`)
          expect(rows).toEqual([{ ok: true }])
        },
        async freezeLeader() {
          const rows = await adminQuery<{ pid: number }>(database.url, `SELECT pid FROM pg_locks WHERE ${LEADER_LOCK}`)
          expect(rows).toHaveLength(1)
          const pid = rows[0]?.pid ?? 0
          // PostgreSQL runs on this machine (scripts/test), and the tests run as root.
          process.kill(pid, 'SIGSTOP')
          return () => process.kill(pid, 'SIGCONT')
        },
        async close() {
          await Promise.all(members.map((leadership) => leadership.close()))
          await database.drop()
        },
      }
    },
  },
]

/** A lead that works until its signal aborts, then takes 100 ms to clean up; counts leads running at once. */
function tracked() {
  const state = { running: 0, mostAtOnce: 0, starts: 0, ends: 0, signals: [] as AbortSignal[] }
  const lead = async (signal: AbortSignal): Promise<void> => {
    state.starts += 1
    state.running += 1
    state.mostAtOnce = Math.max(state.mostAtOnce, state.running)
    state.signals.push(signal)
    await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }))
    await sleep(100)
    state.running -= 1
    state.ends += 1
  }
  return { state, lead }
}

const leaders = (campaigns: Campaign[]): Campaign[] => campaigns.filter((campaign) => campaign.isLeader())

for (const implementation of implementations) {
  describe(`Leadership contract: ${implementation.name}`, () => {
    let fleet: Fleet
    let child: Member | undefined
    const fleetOnly = (name: string, fn: () => Promise<void>, timeout?: number): void => {
      if (implementation.oneProcess === undefined) it(name, fn, timeout)
      else it.skip(`${name} (skipped: ${implementation.oneProcess})`, fn)
    }

    beforeEach(async () => {
      fleet = await implementation.open()
    })

    afterEach(async () => {
      await stopMember(child)
      child = undefined
      await fleet.close()
    })

    it('exactly one of three campaigns for a name leads, and keeps leading', async () => {
      const { state, lead } = tracked()
      const campaigns = await Promise.all([0, 1, 2].map(async () => (await fleet.member()).campaign('reconcile-instances', lead)))
      await waitFor('one campaign leads', () => leaders(campaigns).length === 1)
      // Several retry periods: nobody else takes over while the leader holds on.
      await sleep(2500)
      expect(leaders(campaigns)).toHaveLength(1)
      expect(state.starts).toBe(1)
      expect(state.mostAtOnce).toBe(1)
    })

    it('campaigns of one process for the same name take turns', async () => {
      const { state, lead } = tracked()
      const member = await fleet.member()
      const campaigns = [member.campaign('reap-sandboxes', lead), member.campaign('reap-sandboxes', lead)]
      await waitFor('one campaign leads', () => leaders(campaigns).length === 1)
      await sleep(1500)
      expect(leaders(campaigns)).toHaveLength(1)
      await leaders(campaigns)[0]?.stop()
      await waitFor('the other leads', () => state.starts === 2 && leaders(campaigns).length === 1, 3000)
      expect(state.mostAtOnce).toBe(1)
    })

    it('leads different names independently', async () => {
      const member = await fleet.member()
      const campaigns = [member.campaign('reap-sandboxes', () => {}), member.campaign('renew-certificates', () => {})]
      await waitFor('both lead', () => leaders(campaigns).length === 2)
    })

    it("stop() aborts the leader's signal, waits for its lead to end, then hands over", async () => {
      const { state, lead } = tracked()
      const campaigns = await Promise.all([0, 1, 2].map(async () => (await fleet.member()).campaign('reconcile-instances', lead)))
      await waitFor('one campaign leads', () => leaders(campaigns).length === 1)
      const first = leaders(campaigns)[0]
      await first?.stop()
      expect(state.signals[0]?.aborted).toBe(true)
      expect(state.ends).toBe(1)
      expect(first?.isLeader()).toBe(false)
      const ms = await waitFor('another campaign leads', () => leaders(campaigns).length === 1, 3000)
      expect(leaders(campaigns)[0]).not.toBe(first)
      expect(state.mostAtOnce).toBe(1)
      console.log(`${implementation.name}: handed over ${ms} ms after stop() resolved`)
    })

    it('a lead that rejects is reported and leads again', async () => {
      const member = await fleet.member()
      let calls = 0
      const boom = new Error('the reconciler crashed')
      const campaign = member.campaign('flaky', () => {
        calls += 1
        if (calls === 1) throw boom
      })
      await waitFor('the failure is reported', () => fleet.errors.some((reported) => reported.error === boom))
      await waitFor('it leads again', () => calls === 2 && campaign.isLeader(), 4000)
    })

    fleetOnly("when the leader's session is cut, its signal aborts at once and another leads within 3 s", async () => {
      const { state, lead } = tracked()
      const campaigns = await Promise.all([0, 1, 2].map(async () => (await fleet.member()).campaign('reconcile-instances', lead)))
      await waitFor('one campaign leads', () => leaders(campaigns).length === 1)
      const first = leaders(campaigns)[0]
      const cutAt = Date.now()
      await fleet.cutLeader?.()
      await waitFor("the old leader's signal is aborted", () => state.signals[0]?.aborted === true, 1000)
      const abortedAfter = Date.now() - cutAt
      expect(first?.isLeader()).toBe(false)
      // Any campaign may win the next term, the old one too once it has reconnected.
      await waitFor('a new term starts', () => state.starts === 2 && leaders(campaigns).length === 1, 3000)
      const replacedAfter = Date.now() - cutAt
      // Every campaign campaigns again (the cut one reconnected): when the new leader stops, another leads.
      const second = leaders(campaigns)[0]
      await second?.stop()
      await waitFor('a third term starts', () => state.starts === 3, 3000)
      expect(leaders(campaigns)).toHaveLength(1)
      console.log(`${implementation.name}: signal aborted ${abortedAfter} ms and another leader ${replacedAfter} ms after the session was cut`)
    })

    fleetOnly("a leader whose session stops answering gives up at its heartbeat, and nobody leads until that session is gone", async () => {
      const { state, lead } = tracked()
      const first = (await fleet.member({ heartbeatMs: 300 })).campaign('reconcile-instances', lead)
      await waitFor('the first campaign leads', () => first.isLeader())
      const second = (await fleet.member()).campaign('reconcile-instances', lead)
      const thaw = (await fleet.freezeLeader?.()) ?? (() => {})
      try {
        await waitFor("the leader's signal is aborted", () => state.signals[0]?.aborted === true, 2000)
        // Its session still holds the lock on the server: taking over now would make two leaders.
        await sleep(1500)
        expect(leaders([first, second])).toEqual([])
        expect(state.starts).toBe(1)
      } finally {
        thaw()
      }
      // Resumed, the server process finds its client gone, ends, and frees the lock; the
      // next term goes to either campaign (the first one has reconnected meanwhile).
      await waitFor('a new term starts', () => state.starts === 2 && leaders([first, second]).length === 1, 3000)
      expect(state.mostAtOnce).toBe(1)
    })

    fleetOnly('a leader process killed with SIGKILL is replaced within about 2 s', async () => {
      child = startMember(['lead', fleet.url ?? '', 'reconcile-instances'])
      const started = child
      await waitFor('the child process leads', () => started.lines.includes('leading') || started.child.exitCode !== null, 20_000)
      expect(started.lines, started.stderr()).toContain('leading')
      const campaign = (await fleet.member()).campaign('reconcile-instances', () => {})
      await sleep(1500)
      expect(campaign.isLeader()).toBe(false)
      const killedAt = Date.now()
      started.child.kill('SIGKILL')
      await waitFor('this process leads', () => campaign.isLeader(), 3000)
      console.log(`${implementation.name}: a SIGKILLed leader was replaced after ${Date.now() - killedAt} ms`)
    }, 40_000)

    it('close() leaves nothing open: a process that led exits on its own', async () => {
      child = startMember(['exit-leadership', implementation.childArg, fleet.url ?? ''])
      const started = child
      await waitFor('the child closed its leadership', () => started.lines.includes('closed') || started.child.exitCode !== null, 20_000)
      const code = await Promise.race([started.exited, sleep(3000, 'still running 3 s after close')])
      expect(code, started.stderr()).toBe(0)
    }, 30_000)
  })
}
