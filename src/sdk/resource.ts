import type { Page } from '../schemas/common.js'
import type { Transport } from './transport.js'

/** What every list accepts: a page, and the attribution filters. */
export interface ListParams {
  limit?: number
  cursor?: string
  external_user_id?: string
  external_project_id?: string
  external_workspace_id?: string
  /** metadata[key]=value filters; every pair must match. */
  metadata?: Record<string, string>
}

/** The list/get/iterate half every resource shares; each resource adds its own verbs. */
export class Resource<T, F extends object = ListParams> {
  constructor(
    protected readonly transport: Transport,
    protected readonly path: string,
  ) {}

  list(params: F = {} as F, signal?: AbortSignal): Promise<Page<T>> {
    return this.transport.request('GET', this.path, { query: params as Record<string, never>, signal })
  }

  get(id: string, signal?: AbortSignal): Promise<T> {
    return this.transport.request('GET', `${this.path}/${encodeURIComponent(id)}`, { signal })
  }

  /** Every item across pages, fetched lazily: `for await (const x of client.workspaces.iterate())`. */
  async *iterate(params: F = {} as F): AsyncGenerator<T> {
    let cursor: string | undefined
    do {
      const page = await this.list({ ...params, ...(cursor === undefined ? {} : { cursor }) })
      yield* page.data
      cursor = page.next_cursor ?? undefined
    } while (cursor !== undefined)
  }

  protected post<R>(path: string, body: unknown): Promise<R> {
    return this.transport.request('POST', path, { body })
  }

  protected itemPath(id: string, suffix = ''): string {
    return `${this.path}/${encodeURIComponent(id)}${suffix}`
  }
}

/** Resources with create, update and delete as well. */
export class CrudResource<T, C, U, F extends object = ListParams> extends Resource<T, F> {
  create(input: C): Promise<T> {
    return this.post(this.path, input)
  }

  update(id: string, input: U): Promise<T> {
    return this.transport.request('PATCH', this.itemPath(id), { body: input })
  }

  delete(id: string): Promise<{ id: string; deleted: true }> {
    return this.transport.request('DELETE', this.itemPath(id))
  }
}
