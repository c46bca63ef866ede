import type { RuntimeDriver } from '../runtime/runtime-driver.js'
import type { Store } from '../store/store.js'
import { ApiKeyService } from './api-keys.js'
import type { Log } from './log.js'
import { OrganizationService } from './organizations.js'
import { ProjectService } from './projects.js'
import { SandboxOperations } from './sandbox-operations.js'
import type { ArchiveChecker } from './sandbox-operations.js'
import { SandboxService } from './sandboxes.js'
import type { SandboxDefaults } from './sandboxes.js'
import { TemplateService } from './templates.js'
import { WorkspaceService } from './workspaces.js'

/** Every domain service, wired to the same store and runtime. Adapters (API, CLI server, MCP) use only these. */
export interface Services {
  organizations: OrganizationService
  apiKeys: ApiKeyService
  workspaces: WorkspaceService
  projects: ProjectService
  sandboxes: SandboxService
  sandboxOps: SandboxOperations
  templates: TemplateService
}

export interface ServiceDeps {
  store: Store
  runtime: RuntimeDriver
  checkArchive: ArchiveChecker
  log: Log
  sandboxDefaults?: SandboxDefaults
}

export function createServices(deps: ServiceDeps): Services {
  const workspaces = new WorkspaceService(deps.store)
  const sandboxes = new SandboxService({
    store: deps.store,
    runtime: deps.runtime,
    workspaces,
    log: deps.log,
    ...(deps.sandboxDefaults === undefined ? {} : { defaults: deps.sandboxDefaults }),
  })
  return {
    organizations: new OrganizationService(deps.store),
    apiKeys: new ApiKeyService(deps.store),
    workspaces,
    projects: new ProjectService(deps.store),
    sandboxes,
    sandboxOps: new SandboxOperations({ sandboxes, runtime: deps.runtime, checkArchive: deps.checkArchive }),
    templates: new TemplateService(deps.runtime),
  }
}
