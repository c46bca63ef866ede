import { MiosaError } from '../../../core/errors.js'
import type { Deployment, MiosaClient, Version } from '../../../sdk/index.js'

// `<deployment>` in every command is an id (dep_…) or a slug; `<version>` a version id
// (ver_…) or a version number of a deployment.

export const DEPLOYMENT_COLUMNS = ['id', 'slug', 'name', 'workspace_id', 'active_version_id', 'url', 'created_at'] as const
export const VERSION_COLUMNS = ['id', 'version_number', 'status', 'kind', 'environment', 'release_kind', 'created_by', 'created_at'] as const

export async function resolveDeployment(client: MiosaClient, ref: string): Promise<Deployment> {
  if (ref.startsWith('dep_')) return client.deployments.get(ref)
  const { data } = await client.deployments.list({ slug: ref, limit: 10 })
  if (data.length === 1) return data[0] as Deployment
  if (data.length === 0) throw new MiosaError('not_found', `deployment ${ref} not found`, { details: { kind: 'deployment', id: ref } })
  throw new MiosaError('invalid', `deployment slug ${ref} is in ${data.length} workspaces: name it by id (${data.map((d) => d.id).join(', ')})`)
}

/** A version by id, or by number (`16`) within the deployment. */
export async function resolveVersion(client: MiosaClient, deployment: Deployment, ref: string): Promise<Version> {
  if (ref.startsWith('ver_')) return client.versions.get(ref)
  const { data } = await client.versions.list(deployment.id, { version_number: versionNumber(ref), include_archived: true, limit: 1 })
  if (data[0] === undefined) throw new MiosaError('not_found', `version ${ref} of ${deployment.slug} not found`)
  return data[0]
}

/** `16`, or a version id. */
export function versionRef(flag: string, value: string): { version_id: string } | { version_number: number } {
  return value.startsWith('ver_') ? { version_id: value } : { version_number: versionNumber(value, flag) }
}

function versionNumber(value: string, flag = 'version'): number {
  const n = Number(value)
  if (!/^\d+$/.test(value.trim()) || !Number.isInteger(n) || n < 1) throw new Error(`${flag} expects a version number (1, 2, …) or a version id (ver_…), got "${value}"`)
  return n
}
