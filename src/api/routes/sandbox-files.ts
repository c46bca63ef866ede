import { idParams } from '../../schemas/common.js'
import {
  deleteFileQuery,
  fileDeletedSchema,
  fileListSchema,
  fileStatSchema,
  mkdirSchema,
  moveFileSchema,
  pathQuery,
  writeFileQuery,
} from '../../schemas/sandboxes.js'
import { withLimit } from '../body-stream.js'
import type { LimitedBody } from '../body-stream.js'
import { defineRawRoute, defineRoute } from '../route.js'

// Files in a sandbox: bytes in and out as streams (never buffered whole), metadata as
// JSON, and whole directories as tar archives. Paths are confined to the sandbox by the
// runtime; archives are checked by core before anything is extracted.

const tag = 'Sandbox files'
const sandboxParams = idParams('sandbox')

/** Largest single file written through PUT /files. */
export const FILE_UPLOAD_LIMIT_BYTES = 512 * 1024 * 1024
/** Largest archive (tar or tar.gz) uploaded through PUT /archive. */
export const ARCHIVE_UPLOAD_LIMIT_BYTES = 1024 * 1024 * 1024

const ARCHIVE_TYPES = ['application/x-tar', 'application/gzip', 'application/x-gzip', 'application/octet-stream'] as const

export const sandboxFileRoutes = [
  defineRawRoute({
    method: 'GET',
    path: '/sandboxes/:id/files',
    scope: 'organization',
    tag,
    summary: "Read a file's bytes",
    params: sandboxParams,
    query: pathQuery,
    exampleQuery: { path: '/workspace/app/page.jsx' },
    produces: [{ contentType: 'application/octet-stream', description: 'The file, byte for byte' }],
    handler: async ({ services, organizationId, params, query }) => ({
      kind: 'stream',
      contentType: 'application/octet-stream',
      stream: await services.sandboxOps.readFile(organizationId, params.id, query.path),
      headers: { 'x-content-type-options': 'nosniff' },
    }),
  }),
  defineRawRoute<{ id: string }, { path: string; mode?: string | undefined }, LimitedBody>({
    method: 'PUT',
    path: '/sandboxes/:id/files',
    scope: 'organization',
    tag,
    summary: 'Write a file from the raw request body (any content type), creating parent directories',
    params: sandboxParams,
    query: writeFileQuery,
    exampleQuery: { path: '/workspace/app/page.jsx', mode: '644' },
    bodyStream: { contentTypes: '*', limitBytes: FILE_UPLOAD_LIMIT_BYTES, description: 'The file, byte for byte' },
    response: fileStatSchema,
    produces: [],
    handler: async ({ services, organizationId, params, query, body }) => {
      const mode = query.mode === undefined ? undefined : Number.parseInt(query.mode, 8)
      const stat = await withLimit(body, () => services.sandboxOps.writeFile(organizationId, params.id, query.path, body, mode))
      return { kind: 'json', value: stat }
    },
  }),
  defineRoute({
    method: 'GET',
    path: '/sandboxes/:id/files/stat',
    scope: 'organization',
    tag,
    summary: 'Stat a path (a symlink is reported as one)',
    params: sandboxParams,
    query: pathQuery,
    exampleQuery: { path: '/workspace' },
    response: fileStatSchema,
    handler: ({ services, organizationId, params, query }) => services.sandboxOps.stat(organizationId, params.id, query.path),
  }),
  defineRoute({
    method: 'GET',
    path: '/sandboxes/:id/files/list',
    scope: 'organization',
    tag,
    summary: 'List a directory, sorted by name',
    params: sandboxParams,
    query: pathQuery,
    exampleQuery: { path: '/workspace' },
    response: fileListSchema,
    handler: async ({ services, organizationId, params, query }) => ({
      entries: await services.sandboxOps.list(organizationId, params.id, query.path),
    }),
  }),
  defineRoute({
    method: 'POST',
    path: '/sandboxes/:id/files/mkdir',
    scope: 'organization',
    tag,
    summary: 'Create a directory and its parents (an existing one is fine)',
    params: sandboxParams,
    body: mkdirSchema,
    response: fileStatSchema,
    example: { path: '/workspace/app/components' },
    handler: ({ services, organizationId, params, body }) => services.sandboxOps.mkdir(organizationId, params.id, body.path),
  }),
  defineRoute({
    method: 'POST',
    path: '/sandboxes/:id/files/move',
    scope: 'organization',
    tag,
    summary: 'Move or rename a file or directory (409 when the target exists, unless overwrite)',
    params: sandboxParams,
    body: moveFileSchema,
    response: fileStatSchema,
    example: { from: '/workspace/app/page.jsx', to: '/workspace/app/home.jsx', overwrite: false },
    handler: ({ services, organizationId, params, body }) =>
      services.sandboxOps.move(organizationId, params.id, body.from, body.to, body.overwrite),
  }),
  defineRoute({
    method: 'DELETE',
    path: '/sandboxes/:id/files',
    scope: 'organization',
    tag,
    summary: 'Delete a file, or a directory with recursive=true',
    params: sandboxParams,
    query: deleteFileQuery,
    exampleQuery: { path: '/workspace/tmp', recursive: 'true' },
    response: fileDeletedSchema,
    handler: async ({ services, organizationId, params, query }) => {
      await services.sandboxOps.remove(organizationId, params.id, query.path, query.recursive)
      return { path: query.path, deleted: true as const }
    },
  }),
  defineRawRoute({
    method: 'GET',
    path: '/sandboxes/:id/archive',
    scope: 'organization',
    tag,
    summary: "Download a directory's contents as a tar archive",
    params: sandboxParams,
    query: pathQuery,
    exampleQuery: { path: '/workspace' },
    produces: [{ contentType: 'application/x-tar', description: "A tar of the directory's contents" }],
    handler: async ({ services, organizationId, params, query }) => ({
      kind: 'stream',
      contentType: 'application/x-tar',
      stream: await services.sandboxOps.downloadArchive(organizationId, params.id, query.path),
    }),
  }),
  defineRawRoute<{ id: string }, { path: string }, LimitedBody>({
    method: 'PUT',
    path: '/sandboxes/:id/archive',
    scope: 'organization',
    tag,
    summary: 'Upload a tar or tar.gz and extract it into a directory; an archive with entries that escape it is refused whole',
    params: sandboxParams,
    query: pathQuery,
    exampleQuery: { path: '/workspace' },
    bodyStream: { contentTypes: ARCHIVE_TYPES, limitBytes: ARCHIVE_UPLOAD_LIMIT_BYTES, description: 'A tar archive, optionally gzipped' },
    response: fileStatSchema,
    produces: [],
    handler: async ({ services, organizationId, params, query, body }) => {
      await withLimit(body, () => services.sandboxOps.uploadArchive(organizationId, params.id, query.path, body))
      return { kind: 'json', value: await services.sandboxOps.stat(organizationId, params.id, query.path) }
    },
  }),
]
