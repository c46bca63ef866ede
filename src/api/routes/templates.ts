import { MiosaError } from '../../core/errors.js'
import { buildTemplatesSchema, templateBuildEventSchema, templateListSchema } from '../../schemas/sandboxes.js'
import { streamError } from '../error-handler.js'
import { NdjsonStream } from '../event-stream.js'
import { defineRawRoute, defineRoute } from '../route.js'

// Sandbox templates. Building images is the operator's job (root key); a missing one is
// also built on first use, with the sandbox showing `creating` meanwhile.

const tag = 'Templates'

export const templateRoutes = [
  defineRoute({
    method: 'GET',
    path: '/templates',
    scope: 'any',
    tag,
    summary: 'List sandbox templates and whether each is built',
    response: templateListSchema,
    handler: async ({ services }) => ({ data: await services.templates.list() }),
  }),
  defineRawRoute({
    method: 'POST',
    path: '/templates/build',
    scope: 'root',
    tag,
    summary: 'Build one template, or every one, streaming progress as NDJSON (root key)',
    body: buildTemplatesSchema,
    example: { name: 'node' },
    produces: [
      {
        contentType: 'application/x-ndjson',
        description: 'One JSON document per line: progress lines, then one done line with the built templates, or an error line',
        schema: templateBuildEventSchema,
      },
    ],
    handler: async ({ services, body, request }) => {
      const all = await services.templates.list()
      if (body.name !== undefined && !all.some((t) => t.name === body.name)) {
        throw new MiosaError('invalid', `name: unknown template "${body.name}"; one of ${all.map((t) => t.name).join(', ')}`, {
          details: { field: 'name' },
        })
      }
      const names = body.name === undefined ? all.map((t) => t.name) : [body.name]
      const out = new NdjsonStream()
      void (async () => {
        try {
          for (const name of names) {
            await services.templates.build(name, (p) => out.send({ type: 'progress', template: p.template, message: p.message, step: p.step ?? null, steps: p.steps ?? null }), out.closed)
          }
          const built = (await services.templates.list()).filter((t) => names.includes(t.name))
          out.send({ type: 'done', templates: built })
        } catch (error) {
          if (out.open) out.send({ type: 'error', error: streamError(error, request.id, request.log) })
        } finally {
          out.end()
        }
      })()
      return { kind: 'stream', contentType: NdjsonStream.contentType, stream: out.stream }
    },
  }),
]
