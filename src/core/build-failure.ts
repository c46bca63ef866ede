import type { VersionErrorDetails } from '../schemas/deployments.js'
import { MiosaError } from './errors.js'

// Why a version failed, in the words of what failed: the last lines the build printed (its
// install and build steps, or the image build's RUN step), or, when the release built but
// its instances never became healthy, the last lines the app printed and the port it was
// expected on. Kept with the version, so the API, the SDK and `miosa deploy` show it.

/** Lines of output a failed version keeps. */
export const ERROR_OUTPUT_LINES = 50
/** The platform's own lines in a build log and Docker's bookkeeping, which narrate rather than explain. */
const NARRATION = /^(miosa: |\s*---> |Removing intermediate container )/

export function errorDetailsOf(versionId: string, error: unknown, buildLog: string, mask: (line: string) => string): VersionErrorDetails {
  const logs_command = `miosa logs ${versionId}`
  const details = error instanceof MiosaError ? (error.details as { last_logs?: unknown; port?: unknown } | undefined) : undefined
  if (Array.isArray(details?.last_logs)) {
    const output = details.last_logs.filter((l): l is string => typeof l === 'string').slice(-ERROR_OUTPUT_LINES).map(mask)
    return { output, source: 'app', port: typeof details.port === 'number' ? details.port : null, logs_command }
  }
  const lines = buildLog.split('\n').filter((line) => line !== '' && !NARRATION.test(line))
  return { output: lines.slice(-ERROR_OUTPUT_LINES).map(mask), source: 'build', port: null, logs_command }
}
