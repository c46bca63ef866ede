import type { CreateEnvironmentInput, DeletedEnvironment, Environment } from '../schemas/environments.js'
import type { Transport } from './transport.js'

// Deployment environments of a project: production and staging from its creation, more
// (qa, canary, preview/pr-42) created and deleted. Their URLs come with each deployment
// (`deployment.routes[].url`); clients never build one.

const enc = encodeURIComponent

export class Environments {
  constructor(
    private readonly transport: Transport,
    private readonly api: string,
  ) {}

  /** The project's environments, production first. */
  async list(projectId: string, signal?: AbortSignal): Promise<Environment[]> {
    const page: { data: Environment[] } = await this.transport.request('GET', `${this.api}/projects/${enc(projectId)}/environments`, { signal })
    return page.data
  }

  create(projectId: string, input: CreateEnvironmentInput): Promise<Environment> {
    return this.transport.request('POST', `${this.api}/projects/${enc(projectId)}/environments`, { body: input })
  }

  /** Deletes it and its route in every deployment of the project (what it served stops being served); production cannot be deleted. */
  delete(projectId: string, name: string): Promise<DeletedEnvironment> {
    return this.transport.request('DELETE', `${this.api}/projects/${enc(projectId)}/environments/${enc(name)}`)
  }
}
