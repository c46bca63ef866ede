import type { AnyRoute } from '../route.js'
import { apiKeyRoutes } from './api-keys.js'
import { organizationRoutes } from './organizations.js'
import { projectRoutes } from './projects.js'
import { systemRoutes } from './system.js'
import { workspaceRoutes } from './workspaces.js'

/** Every API route. Registration, the OpenAPI document and the tenancy tests all read this list. */
export const routes: readonly AnyRoute[] = [
  ...systemRoutes,
  ...organizationRoutes,
  ...apiKeyRoutes,
  ...workspaceRoutes,
  ...projectRoutes,
]
