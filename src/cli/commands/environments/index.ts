import type { Command } from 'commander'
import { command, run } from '../../command.js'
import { renderTable } from '../../output.js'
import { resolveProject } from './resolve.js'

// `miosa environments list|create|delete <project>`: a project's deployment environments.
// Each deployment of the project serves one version per environment, at its own URL
// (`miosa deployments get <deployment>` lists them).

const COLUMNS = ['name', 'slug', 'id', 'created_at'] as const

export function registerEnvironments(program: Command): void {
  const noun = program
    .command('environments')
    .description('deployment environments of a project (production and staging from its creation; add qa, canary, preview/pr-42, ...)')

  run(command(noun, 'list <project>', "list a project's environments (project by id or slug), production first"), async ({ client }, [ref]) => {
    const c = await client()
    const project = await resolveProject(c, ref as string)
    const data = await c.environments.list(project.id)
    return { data, human: renderTable(data, COLUMNS) }
  })

  run(
    command(noun, 'create <project> <name>', 'create an environment: lowercase segments joined by at most one "/" (qa, preview/pr-42)').addHelpText(
      'after',
      '\nIts URL is <deployment>--<name with / as ->.<workspace>.<base-domain>, for every deployment of the project.\n\nExample:\n  miosa environments create shop preview/pr-42\n  miosa deploy --env preview/pr-42',
    ),
    async ({ client }, [ref, name]) => {
      const c = await client()
      const project = await resolveProject(c, ref as string)
      const created = await c.environments.create(project.id, { name: name as string })
      return { data: created, human: `created environment ${created.name} (${created.id}) in ${project.slug}` }
    },
  )

  run(
    command(noun, 'delete <project> <name>', 'delete an environment and its route in every deployment of the project (what it served stops being served); production cannot be deleted'),
    async ({ client }, [ref, name]) => {
      const c = await client()
      const project = await resolveProject(c, ref as string)
      const deleted = await c.environments.delete(project.id, name as string)
      return { data: deleted, human: `deleted environment ${deleted.name} of ${project.slug} (${deleted.routes_removed} route${deleted.routes_removed === 1 ? '' : 's'} removed)` }
    },
  )
}
