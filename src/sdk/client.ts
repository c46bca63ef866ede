import { Limits } from './limits.js'
import type { ApiKey, CreateApiKeyInput, CreatedApiKey } from '../schemas/api-keys.js'
import type { CreateOrganizationInput, Organization } from '../schemas/organizations.js'
import type { CreateProjectInput, Project, UpdateProjectInput } from '../schemas/projects.js'
import type { Whoami } from '../schemas/system.js'
import type { CreateWorkspaceInput, UpdateWorkspaceInput, Workspace } from '../schemas/workspaces.js'
import { CrudResource, Resource } from './resource.js'
import { Deployments, Versions } from './deployments.js'
import { Admin, EnvVars } from './env-vars.js'
import { Environments } from './environments.js'
import { PreviewTokens, ShareTokens } from './previews.js'
import { Sandboxes } from './sandboxes.js'
import { Templates } from './templates.js'
import { Tenant } from './tenant.js'
import type { ListParams } from './resource.js'
import { Transport } from './transport.js'
import type { ClientOptions } from './transport.js'

const API = '/api/v1'

/** Organizations: the platform operator's, with the root key. */
export class Organizations extends Resource<Organization> {
  create(input: CreateOrganizationInput): Promise<Organization> {
    return this.post(this.path, input)
  }

  /** Mints an API key of the organization; `key` in the answer is shown this once. */
  createApiKey(organizationId: string, input: CreateApiKeyInput = {}): Promise<CreatedApiKey> {
    return this.post(this.itemPath(organizationId, '/api-keys'), input)
  }
}

/** Your organization's API keys. */
export class ApiKeys extends Resource<ApiKey> {
  create(input: CreateApiKeyInput = {}): Promise<CreatedApiKey> {
    return this.post(this.path, input)
  }

  /** Revokes the key: it stops working at once. */
  revoke(id: string): Promise<ApiKey> {
    return this.transport.request('DELETE', this.itemPath(id))
  }
}

export type ProjectListParams = ListParams & { workspace_id?: string }

/**
 * A typed client for the miosa API.
 *
 * ```ts
 * const miosa = new MiosaClient() // MIOSA_API_URL, MIOSA_API_KEY
 * const ws = await miosa.workspaces.create({ name: 'Acme' })
 * ```
 */
export class MiosaClient {
  readonly organizations: Organizations
  readonly apiKeys: ApiKeys
  readonly workspaces: CrudResource<Workspace, CreateWorkspaceInput, UpdateWorkspaceInput>
  readonly projects: CrudResource<Project, CreateProjectInput, UpdateProjectInput, ProjectListParams>
  /** Deployment environments of a project. */
  readonly environments: Environments
  readonly sandboxes: Sandboxes
  readonly templates: Templates
  readonly previewTokens: PreviewTokens
  readonly shareTokens: ShareTokens
  readonly tenant: Tenant
  readonly deployments: Deployments
  readonly versions: Versions
  /** Env vars and secrets of deployment environments. */
  readonly env: EnvVars
  /** Platform administration (root key). */
  readonly admin: Admin
  /** Quotas of organizations and workspaces, with their use. */
  readonly limits: Limits
  private readonly transport: Transport

  constructor(options: ClientOptions = {}) {
    this.transport = new Transport(options)
    this.organizations = new Organizations(this.transport, `${API}/organizations`)
    this.apiKeys = new ApiKeys(this.transport, `${API}/api-keys`)
    this.workspaces = new CrudResource(this.transport, `${API}/workspaces`)
    this.projects = new CrudResource(this.transport, `${API}/projects`)
    this.environments = new Environments(this.transport, API)
    this.sandboxes = new Sandboxes(this.transport, API)
    this.templates = new Templates(this.transport, `${API}/templates`)
    this.previewTokens = new PreviewTokens(this.transport, `${API}/preview-tokens`)
    this.shareTokens = new ShareTokens(this.transport, `${API}/share-tokens`)
    this.tenant = new Tenant(this.transport, API)
    this.versions = new Versions(this.transport, API)
    this.deployments = new Deployments(this.transport, API, this.versions)
    this.env = new EnvVars(this.transport, API)
    this.admin = new Admin(this.transport, API)
    this.limits = new Limits(this.transport, API)
  }

  get apiUrl(): string {
    return this.transport.apiUrl
  }

  /** Who the configured key belongs to. */
  whoami(): Promise<Whoami> {
    return this.transport.request('GET', `${API}/whoami`)
  }

  /** Liveness of the server (no key needed). */
  health(): Promise<{ status: string }> {
    return this.transport.request('GET', '/healthz')
  }
}
