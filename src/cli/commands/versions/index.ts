import type { Command } from 'commander'
import { Option } from 'commander'
import { command, listOptions, listPages, run } from '../../command.js'
import type { VersionListParams } from '../../../sdk/index.js'
import { renderPage, renderRecord } from '../../output.js'
import type { Row } from '../../output.js'
import { VERSION_COLUMNS, resolveDeployment, resolveVersion } from '../deployments/resolve.js'

export function registerVersions(program: Command): void {
  const noun = program.command('versions').description("a deployment's versions: one per publish, numbered, each bootable forever")
  const list = listOptions(command(noun, 'list <deployment>', 'list the versions of a deployment (id or slug), newest first'))
    .addOption(new Option('--status <status>', 'only versions in this status').choices(['building', 'ready', 'failed', 'archived']))
    .option('--env <environment>', 'only versions published to this environment')
    .option('--include-archived', 'list archived versions too')
  run(list, async ({ client }, [ref], opts) => {
    const c = await client()
    const deployment = await resolveDeployment(c, ref as string)
    const filters = {
      ...(opts.status === undefined ? {} : { status: opts.status }),
      ...(opts.env === undefined ? {} : { environment: opts.env }),
      ...(opts.includeArchived === true ? { include_archived: true } : {}),
    }
    const page = await listPages(opts, (params) => c.versions.list(deployment.id, { ...params, ...filters } as VersionListParams))
    return { data: page, human: renderPage(page as { data: Row[]; next_cursor: string | null }, VERSION_COLUMNS) }
  })
  run(
    command(noun, 'get <version> [number]', 'show one version: by id (ver_…), or a deployment (id or slug) and a version number').addHelpText(
      'after',
      '\nExamples:\n  miosa versions get ver_…\n  miosa versions get smile-dental 16 --json',
    ),
    async ({ client }, [ref, number]) => {
      const c = await client()
      const version =
        number === undefined
          ? await c.versions.get(ref as string)
          : await resolveVersion(c, await resolveDeployment(c, ref as string), number)
      return { data: version, human: renderRecord(version) }
    },
  )
}
