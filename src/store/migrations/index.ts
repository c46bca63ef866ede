import type { Migration } from 'kysely'
import * as foundation from './0001-foundation.js'
import * as sandboxes from './0002-sandboxes.js'
import * as previews from './0003-previews.js'
import * as deployments from './0004-deployments.js'
import * as runtimeInstances from './0005-runtime-instances.js'
import * as environments from './0006-environments.js'
import * as envVars from './0007-env-vars.js'
import * as sandboxEnvironments from './0008-sandbox-environments.js'
import * as versionErrorDetails from './0009-version-error-details.js'
import * as sandboxServices from './0010-sandbox-services.js'
import * as quotas from './0011-quotas.js'
import * as sandboxEgress from './0012-sandbox-egress.js'

// Listed here rather than read from disk, so the compiled package needs no file lookup.
// Append only: a migration that has run anywhere is never edited.
export const migrations: Record<string, Migration> = {
  '0001-foundation': foundation,
  '0002-sandboxes': sandboxes,
  '0003-previews': previews,
  '0004-deployments': deployments,
  '0005-runtime-instances': runtimeInstances,
  '0006-environments': environments,
  '0007-env-vars': envVars,
  '0008-sandbox-environments': sandboxEnvironments,
  '0009-version-error-details': versionErrorDetails,
  '0010-sandbox-services': sandboxServices,
  '0011-quotas': quotas,
  '0012-sandbox-egress': sandboxEgress,
}
