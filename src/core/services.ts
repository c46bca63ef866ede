import type { Store } from '../store/store.js'
import { ApiKeyService } from './api-keys.js'
import { OrganizationService } from './organizations.js'
import { ProjectService } from './projects.js'
import { WorkspaceService } from './workspaces.js'

/** Every domain service, wired to the same store. Adapters (API, CLI server, MCP) use only these. */
export interface Services {
  organizations: OrganizationService
  apiKeys: ApiKeyService
  workspaces: WorkspaceService
  projects: ProjectService
}

export function createServices(deps: { store: Store }): Services {
  return {
    organizations: new OrganizationService(deps.store),
    apiKeys: new ApiKeyService(deps.store),
    workspaces: new WorkspaceService(deps.store),
    projects: new ProjectService(deps.store),
  }
}
