import type { Command } from 'commander'
import { command, run } from '../../../command.js'
import { renderTable } from '../../../output.js'

// `miosa sandbox services`: what `exec --background` started, kept with the sandbox and
// started again whenever it resumes.

export function registerServices(parent: Command): void {
  const group = parent
    .command('services')
    .description("list and remove a sandbox's background services (start one with `miosa sandbox exec --background`)")
  run(command(group, 'list <sandbox-id>', "list a sandbox's background services, oldest first"), async ({ client }, [id]) => {
    const services = await (await client()).sandboxes.listServices(id as string)
    const rows = services.map((s) => ({ ...s, cmd: s.cmd.join(' ') }))
    return { data: services, human: renderTable(rows, ['id', 'cmd', 'log_path', 'started_at']) }
  })
  run(command(group, 'remove <sandbox-id> <service-id>', 'end a background service; it is not started again on resume'), async ({ client }, [id, serviceId]) => {
    const result = await (await client()).sandboxes.removeService(id as string, serviceId as string)
    return { data: result, human: `removed service ${serviceId}` }
  })
}
