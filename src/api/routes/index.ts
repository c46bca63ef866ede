import type { AnyRoute } from '../route.js'
import { apiKeyRoutes } from './api-keys.js'
import { deploymentRoutes } from './deployments.js'
import { envVarRoutes } from './env-vars.js'
import { environmentRoutes } from './environments.js'
import { organizationRoutes } from './organizations.js'
import { previewRoutes } from './previews.js'
import { projectRoutes } from './projects.js'
import { sandboxExecRoutes } from './sandbox-exec.js'
import { sandboxFileRoutes } from './sandbox-files.js'
import { sandboxServiceRoutes } from './sandbox-services.js'
import { sandboxRoutes } from './sandboxes.js'
import { systemRoutes } from './system.js'
import { templateRoutes } from './templates.js'
import { tenantRoutes } from './tenant.js'
import { workspaceRoutes } from './workspaces.js'

/** Every API route. Registration, the OpenAPI document and the tenancy tests all read this list. */
export const routes: readonly AnyRoute[] = [
  ...systemRoutes,
  ...organizationRoutes,
  ...apiKeyRoutes,
  ...workspaceRoutes,
  ...projectRoutes,
  ...environmentRoutes,
  ...sandboxRoutes,
  ...sandboxExecRoutes,
  ...sandboxFileRoutes,
  ...sandboxServiceRoutes,
  ...templateRoutes,
  ...previewRoutes,
  ...tenantRoutes,
  ...deploymentRoutes,
  ...envVarRoutes,
]
