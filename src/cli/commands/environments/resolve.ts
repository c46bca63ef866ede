import { MiosaError } from '../../../core/errors.js'
import type { MiosaClient, Project } from '../../../sdk/index.js'

/** `<project>` is an id (prj_…) or a slug; a slug used in several workspaces must be named by id. */
export async function resolveProject(client: MiosaClient, ref: string): Promise<Project> {
  if (ref.startsWith('prj_')) return client.projects.get(ref)
  const found: Project[] = []
  for await (const project of client.projects.iterate({ limit: 200 })) if (project.slug === ref) found.push(project)
  if (found.length === 1) return found[0] as Project
  if (found.length === 0) throw new MiosaError('not_found', `project ${ref} not found`, { details: { kind: 'project', id: ref } })
  throw new MiosaError('invalid', `project slug ${ref} is in ${found.length} workspaces: name it by id (${found.map((p) => p.id).join(', ')})`)
}
