import type { Store } from '../store/store.js'
import type { Organization } from '../schemas/organizations.js'
import type { Page } from '../schemas/common.js'
import { attributionOf, listQueryOf } from './attribution.js'
import type { AttributionInput, ListInput } from './attribution.js'
import { nowIso } from './clock.js'
import { notFound } from './errors.js'
import { newId } from './ids.js'
import { insertWithSlug, slugify } from './slugs.js'

export interface CreateOrganization extends AttributionInput {
  name: string
  slug?: string | undefined
}

/** Organizations are the platform operator's (root key) to manage. */
export class OrganizationService {
  constructor(private readonly store: Store) {}

  async create(input: CreateOrganization): Promise<Organization> {
    const now = nowIso()
    const base = { id: newId('organization'), name: input.name, ...attributionOf(input), created_at: now, updated_at: now }
    return insertWithSlug(input.slug, slugify(input.name, 'org'), (slug) =>
      this.store.organizations.insert({ ...base, slug }),
    )
  }

  async get(id: string): Promise<Organization> {
    const org = await this.store.organizations.get({}, id)
    if (org === undefined) throw notFound('organization', id)
    return org
  }

  list(input: ListInput): Promise<Page<Organization>> {
    return this.store.organizations.list({}, listQueryOf<Organization>(input))
  }
}
