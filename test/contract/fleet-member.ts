// A process of a fleet, started by the events and leadership contract tests (through tsx).
//   exit-events <in-process|postgres> [url]      uses events, closes them, then must exit on its own
//   exit-leadership <single|postgres> [url]      leads, closes, then must exit on its own
//   lead <url> <name>                            leads <name> until killed
// It prints one line per step ("leading", "closed"); it never calls process.exit on success,
// so a handle left open shows as a process that does not end.

import type { PlatformEvent, PlatformEvents } from '../../src/core/platform-events.js'
import type { Leadership } from '../../src/core/leadership.js'
import { InProcessEvents } from '../../src/fleet/in-process-events.js'
import { openPostgresEvents } from '../../src/fleet/postgres-events.js'
import { openPostgresLeadership } from '../../src/fleet/postgres-leadership.js'
import { SingleLeadership } from '../../src/fleet/single-leadership.js'

const [mode, impl, url] = process.argv.slice(2)
const onError = (error: unknown, context: string): void => {
  process.stderr.write(`${context}: ${String(error)}\n`)
}

async function exitEvents(): Promise<void> {
  const open = async (): Promise<PlatformEvents> =>
    impl === 'postgres' ? openPostgresEvents({ connection: need(url), onError }) : new InProcessEvents()
  const sender = await open()
  const receiver = impl === 'postgres' ? await open() : sender
  const received = new Promise<PlatformEvent>((resolve) => receiver.subscribe(resolve))
  await sender.publish({ type: 'sandbox.changed', sandboxId: 'sbx_exit' })
  await received
  await sender.close()
  if (receiver !== sender) await receiver.close()
  process.stdout.write('closed\n')
}

async function exitLeadership(): Promise<void> {
  const leadership: Leadership = impl === 'postgres' ? await openPostgresLeadership({ connection: need(url), onError }) : new SingleLeadership({ onError })
  await new Promise<void>((resolve) => {
    leadership.campaign('exit', (signal) => {
      // A lead that keeps a timer until its signal aborts, as a reconciler does.
      const timer = setInterval(() => {}, 100)
      signal.addEventListener('abort', () => clearInterval(timer))
      resolve()
    })
  })
  await leadership.close()
  process.stdout.write('closed\n')
}

async function lead(): Promise<void> {
  const leadership = await openPostgresLeadership({ connection: need(impl), onError })
  leadership.campaign(need(url), () => {
    process.stdout.write('leading\n')
  })
  // Killed by the test; a bound in case the test is gone.
  setTimeout(() => void leadership.close(), 60_000)
}

function need(value: string | undefined): string {
  if (value === undefined) throw new Error('usage: fleet-member <mode> <impl|url> [url|name]')
  return value
}

const modes: Record<string, () => Promise<void>> = { 'exit-events': exitEvents, 'exit-leadership': exitLeadership, lead }
const run = modes[mode ?? '']
if (run === undefined) throw new Error(`unknown mode ${String(mode)}`)
void run().catch((error: unknown) => {
  process.stderr.write(`${String(error)}\n`)
  process.exitCode = 1
  // A failure may leave handles open: end it, the test reads the exit code.
  setTimeout(() => process.exit(1), 100).unref()
})
