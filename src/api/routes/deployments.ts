import { Readable } from 'node:stream'
import { z } from 'zod'
import { requireOrganization } from '../../core/caller.js'
import { idParams, pageOf } from '../../schemas/common.js'
import {
  createDeploymentSchema,
  deploymentSchema,
  instancesQuery,
  instancesResultSchema,
  restartSchema,
  runtimeLogEventSchema,
  runtimeLogsQuery,
  updateDeploymentSchema,
  listDeploymentsQuery,
  listRouteChangesQuery,
  listVersionsQuery,
  logEndEventSchema,
  logLineEventSchema,
  logsQuery,
  planResultSchema,
  planSchema,
  promoteSchema,
  publishByNameSchema,
  publishSchema,
  rollbackSchema,
  routeChangeSchema,
  uploadPlanQuery,
  uploadPublishQuery,
  versionSchema,
  waitQuery,
} from '../../schemas/deployments.js'
import { withLimit } from '../body-stream.js'
import type { LimitedBody } from '../body-stream.js'
import { streamError } from '../error-handler.js'
import { EventStream } from '../event-stream.js'
import { defineRawRoute, defineRoute } from '../route.js'

// Publishing: deployments (the stable app and its managed URL), publishes that make
// numbered versions from a sandbox or an uploaded directory, build logs (stored, or
// followed live), and the route of each environment, re-pointed by rollback and promote.

const tag = 'Deployments'
const deploymentParams = idParams('deployment')
const versionParams = idParams('version')

/** Largest source directory uploaded (tar or tar.gz) for a publish. */
export const SOURCE_UPLOAD_LIMIT_BYTES = 1024 * 1024 * 1024
const ARCHIVE_TYPES = ['application/x-tar', 'application/gzip', 'application/x-gzip', 'application/octet-stream'] as const

const routeChangeResultSchema = z
  .object({ deployment: deploymentSchema, version: versionSchema, change: routeChangeSchema })
  .meta({ id: 'RouteChangeResult' })

const settingsExample = { install_command: 'npm ci', build_command: 'npm run build', output_dir: 'dist', spa_fallback: true }

/** Build settings given as query parameters (uploads, whose body is the archive). */
function settingsOf(q: { install_command?: string | undefined; build_command?: string | undefined; output_dir?: string | undefined; spa_fallback?: 'true' | 'false' | undefined }) {
  return {
    ...(q.install_command === undefined ? {} : { install_command: q.install_command }),
    ...(q.build_command === undefined ? {} : { build_command: q.build_command }),
    ...(q.output_dir === undefined ? {} : { output_dir: q.output_dir }),
    ...(q.spa_fallback === undefined ? {} : { spa_fallback: q.spa_fallback === 'true' }),
  }
}

export const deploymentRoutes = [
  defineRoute({
    method: 'POST',
    path: '/deployments',
    scope: 'organization',
    tag,
    summary: 'Create a deployment: the stable app with its managed URL (publishing by name creates one too)',
    body: createDeploymentSchema,
    response: deploymentSchema,
    status: 201,
    example: { name: 'smile-dental', workspace_id: 'ws_example', spa_fallback: false, external_user_id: 'user_42' },
    handler: ({ services, organizationId, body }) => services.deployments.create(organizationId, body),
  }),
  defineRoute({
    method: 'GET',
    path: '/deployments',
    scope: 'organization',
    tag,
    summary: 'List deployments, newest first; filter by workspace_id, project_id, slug, name and external ids',
    query: listDeploymentsQuery,
    response: pageOf(deploymentSchema),
    handler: ({ services, organizationId, query }) => services.deployments.list(organizationId, query),
  }),
  defineRoute({
    method: 'GET',
    path: '/deployments/:id',
    scope: 'organization',
    tag,
    summary: 'Get a deployment, its URL and the version each environment serves',
    params: deploymentParams,
    response: deploymentSchema,
    handler: ({ services, organizationId, params }) => services.deployments.get(organizationId, params.id),
  }),
  defineRoute({
    method: 'PATCH',
    path: '/deployments/:id',
    scope: 'organization',
    tag,
    summary: 'Change a deployment: name, SPA fallback, desired instances (applied within a second), health check, deploy and drain timeouts',
    params: deploymentParams,
    body: updateDeploymentSchema,
    response: deploymentSchema,
    example: { instances: 3, health_check: { path: '/healthz', interval_seconds: 2 } },
    handler: ({ services, organizationId, params, body }) => services.deployments.update(organizationId, params.id, body),
  }),
  defineRoute({
    method: 'GET',
    path: '/deployments/:id/instances',
    scope: 'organization',
    tag,
    summary: "The runtime instances of an environment's active dynamic version, the reconciler's latest decisions, and why instances keep failing if they do",
    params: deploymentParams,
    query: instancesQuery,
    response: instancesResultSchema,
    handler: ({ services, organizationId, params, query }) => services.deployments.instancesOf(organizationId, params.id, query.environment, query.events),
  }),
  defineRoute({
    method: 'POST',
    path: '/deployments/:id/restart',
    scope: 'organization',
    tag,
    summary: 'Replace the instances of the active version with fresh ones: the new ones get healthy before the old ones drain (no downtime)',
    params: deploymentParams,
    body: restartSchema,
    response: instancesResultSchema,
    example: { environment: 'production' },
    handler: ({ services, organizationId, params, body }) => services.deployments.restart(organizationId, params.id, body.environment),
  }),
  defineRawRoute({
    method: 'GET',
    path: '/deployments/:id/logs',
    scope: 'organization',
    tag,
    summary: "Runtime logs of the environment's instances (stdout and stderr, with instance id and timestamp); ?follow=true streams new lines",
    params: deploymentParams,
    query: runtimeLogsQuery,
    produces: [
      { contentType: 'application/x-ndjson', description: 'One JSON object per line: {instance_id, stream, timestamp, line}' },
      { contentType: 'text/event-stream', description: 'With ?follow=true: a `log` event per line, the last `tail` lines of each instance first', schema: runtimeLogEventSchema },
    ],
    handler: async ({ services, organizationId, params, query, request }) => {
      if (query.follow !== true) {
        const lines = await services.deployments.runtimeLogs(organizationId, params.id, { environment: query.environment, tail: query.tail, follow: false })
        const stream = Readable.from(
          (async function* () {
            for await (const line of lines) yield `${JSON.stringify(line)}\n`
          })(),
        )
        return { kind: 'stream', contentType: 'application/x-ndjson; charset=utf-8', stream }
      }
      const events = new EventStream()
      const lines = await services.deployments.runtimeLogs(organizationId, params.id, { environment: query.environment, tail: query.tail, follow: true, signal: events.closed })
      events.pump(
        async () => {
          for await (const line of lines) events.send('log', line)
        },
        (error) => streamError(error, request.id, request.log),
      )
      return { kind: 'stream', contentType: EventStream.contentType, stream: events.stream, headers: EventStream.headers }
    },
  }),
  defineRoute({
    method: 'POST',
    path: '/deployments/:id/publish',
    scope: 'organization',
    tag,
    summary:
      "Publish a sandbox's /workspace (frozen at once) as a new version: answers it building (?wait=true: once ready or failed); when ready it is served",
    params: deploymentParams,
    query: waitQuery,
    body: publishSchema,
    response: versionSchema,
    status: 201,
    example: { sandbox_id: 'sbx_example', kind: 'auto', environment: 'production', settings: settingsExample },
    handler: ({ services, organizationId, caller, params, query, body }) =>
      services.publish.publish(organizationId, requireOrganization(caller), params.id, body, { wait: query.wait }),
  }),
  defineRoute({
    method: 'POST',
    path: '/publish',
    scope: 'organization',
    tag,
    summary: 'Publish to the deployment of this name in the workspace, creating it on first publish',
    query: waitQuery,
    body: publishByNameSchema,
    response: versionSchema,
    status: 201,
    example: { name: 'smile-dental', sandbox_id: 'sbx_example', kind: 'static', settings: { output_dir: 'dist' } },
    handler: ({ services, organizationId, caller, query, body }) =>
      services.publish.publishByName(organizationId, requireOrganization(caller), body, { wait: query.wait }),
  }),
  defineRawRoute<{ id: string }, z.output<typeof uploadPublishQuery>, LimitedBody>({
    method: 'POST',
    path: '/deployments/:id/publish/upload',
    scope: 'organization',
    tag,
    summary: 'Publish a source directory uploaded as a tar or tar.gz (the raw body); build settings in the query',
    params: deploymentParams,
    query: uploadPublishQuery,
    bodyStream: { contentTypes: ARCHIVE_TYPES, limitBytes: SOURCE_UPLOAD_LIMIT_BYTES, description: 'A tar archive of the source directory, optionally gzipped' },
    response: versionSchema,
    produces: [],
    status: 201,
    handler: async ({ services, organizationId, caller, params, query, body }) => {
      const { kind, environment, wait, ...rest } = query
      const settings = settingsOf(rest)
      const version = await withLimit(body, () =>
        services.publish.publishUpload(organizationId, requireOrganization(caller), params.id, body, { kind, environment, settings }, { wait }),
      )
      return { kind: 'json', value: version }
    },
  }),
  defineRoute({
    method: 'POST',
    path: '/deployments/:id/plan',
    scope: 'organization',
    tag,
    summary: "The build plan a publish of the sandbox would follow (detected from a snapshot of its /workspace); nothing is built",
    params: deploymentParams,
    body: planSchema,
    response: planResultSchema,
    example: { sandbox_id: 'sbx_example', kind: 'auto', settings: { output_dir: 'dist' } },
    handler: ({ services, organizationId, params, body }) => services.publish.plan(organizationId, body, params.id),
  }),
  defineRawRoute<{ id: string }, z.output<typeof uploadPlanQuery>, LimitedBody>({
    method: 'POST',
    path: '/deployments/:id/plan/upload',
    scope: 'organization',
    tag,
    summary: 'The build plan a publish of an uploaded source directory (tar or tar.gz, the raw body) would follow; nothing is built',
    params: deploymentParams,
    query: uploadPlanQuery,
    bodyStream: { contentTypes: ARCHIVE_TYPES, limitBytes: SOURCE_UPLOAD_LIMIT_BYTES, description: 'A tar archive of the source directory, optionally gzipped' },
    response: planResultSchema,
    produces: [],
    handler: async ({ services, organizationId, params, query, body }) => {
      const { kind, ...rest } = query
      const result = await withLimit(body, () => services.publish.planUpload(organizationId, params.id, body, { kind, settings: settingsOf(rest) }))
      return { kind: 'json', value: result }
    },
  }),
  defineRoute({
    method: 'POST',
    path: '/plan',
    scope: 'organization',
    tag,
    summary: 'The build plan a publish of the sandbox would follow, before any deployment exists; nothing is built',
    body: planSchema,
    response: planResultSchema,
    example: { sandbox_id: 'sbx_example', kind: 'auto' },
    handler: ({ services, organizationId, body }) => services.publish.plan(organizationId, body),
  }),
  defineRoute({
    method: 'GET',
    path: '/deployments/:id/versions',
    scope: 'organization',
    tag,
    summary: 'List versions of a deployment, newest first; archived ones only with status=archived or include_archived=true',
    params: deploymentParams,
    query: listVersionsQuery,
    response: pageOf(versionSchema),
    handler: ({ services, organizationId, params, query }) => services.deployments.listVersions(organizationId, params.id, query),
  }),
  defineRoute({
    method: 'GET',
    path: '/versions/:id',
    scope: 'organization',
    tag,
    summary: 'Get a version: status, build plan, source and release sha256',
    params: versionParams,
    response: versionSchema,
    handler: ({ services, organizationId, params }) => services.deployments.getVersion(organizationId, params.id),
  }),
  defineRawRoute({
    method: 'GET',
    path: '/versions/:id/logs',
    scope: 'organization',
    tag,
    summary: "A version's build output (the last 256 KiB); ?follow=true streams it, then each new line until the build ends",
    params: versionParams,
    query: logsQuery,
    produces: [
      { contentType: 'text/plain', description: 'The build output as stored' },
      {
        contentType: 'text/event-stream',
        description: 'With ?follow=true: a `line` event ({line}) per line, stored ones first, then one `end` event ({status, error}) when the build has ended',
        schema: z.union([logLineEventSchema, logEndEventSchema]),
      },
    ],
    handler: async ({ services, organizationId, params, query, request }) => {
      if (query.follow !== true) {
        const text = await services.publish.logs(organizationId, params.id)
        return { kind: 'stream', contentType: 'text/plain; charset=utf-8', stream: Readable.from([text]) }
      }
      const events = new EventStream()
      const followed = await services.publish.follow(organizationId, params.id, events.closed)
      events.pump(
        async () => {
          for await (const line of followed.lines) events.send('line', { line })
          if (events.open) events.send('end', await followed.end())
        },
        (error) => streamError(error, request.id, request.log),
      )
      return { kind: 'stream', contentType: EventStream.contentType, stream: events.stream, headers: EventStream.headers }
    },
  }),
  defineRoute({
    method: 'POST',
    path: '/versions/:id/archive',
    scope: 'organization',
    tag,
    summary: 'Archive a version: hidden from the default list, its release kept (it stays bootable); not the one an environment serves',
    params: versionParams,
    response: versionSchema,
    handler: ({ services, organizationId, params }) => services.deployments.archive(organizationId, params.id),
  }),
  defineRoute({
    method: 'POST',
    path: '/deployments/:id/rollback',
    scope: 'organization',
    tag,
    summary: 'Re-point an environment (default production) at an earlier ready version; nothing is rebuilt',
    params: deploymentParams,
    body: rollbackSchema,
    response: routeChangeResultSchema,
    example: { version_number: 16 },
    handler: ({ services, organizationId, caller, params, body }) =>
      services.deployments.rollback(organizationId, requireOrganization(caller), params.id, body),
  }),
  defineRoute({
    method: 'POST',
    path: '/deployments/:id/promote',
    scope: 'organization',
    tag,
    summary: 'Point an environment at a ready version of the deployment (e.g. one built for staging); nothing is rebuilt',
    params: deploymentParams,
    body: promoteSchema,
    response: routeChangeResultSchema,
    example: { version_id: 'ver_example', environment: 'production' },
    handler: ({ services, organizationId, caller, params, body }) =>
      services.deployments.promote(organizationId, requireOrganization(caller), params.id, body),
  }),
  defineRoute({
    method: 'GET',
    path: '/deployments/:id/route-history',
    scope: 'organization',
    tag,
    summary: 'Every change of the deployment\'s routes, newest first: who, when, from and to which version, and why',
    params: deploymentParams,
    query: listRouteChangesQuery,
    response: pageOf(routeChangeSchema),
    handler: ({ services, organizationId, params, query }) => services.deployments.routeHistory(organizationId, params.id, query),
  }),
]
