import {
  brandingSchema,
  previewDomainSchema,
  setBrandingSchema,
  setPreviewDomainSchema,
  tenantQuery,
  verifyPreviewDomainSchema,
} from '../../schemas/tenant.js'
import { defineRoute } from '../route.js'

// A workspace's tenant settings: branding of the pages the edge renders, and its own
// preview domain. Without workspace_id, the organization's first workspace.

const tag = 'Tenant'

export const tenantRoutes = [
  defineRoute({
    method: 'PUT',
    path: '/tenant/branding',
    scope: 'organization',
    tag,
    summary: "Set the workspace's branding of edge error pages (logo, accent colour, support link); shown within 60 seconds",
    body: setBrandingSchema,
    response: brandingSchema,
    example: {
      workspace_id: 'ws_example',
      logo_url: 'https://cdn.yourproduct.com/logo.svg',
      accent_color: '#0f766e',
      support_url: 'https://yourproduct.com/support',
    },
    handler: ({ services, organizationId, body }) => services.tenant.setBranding(organizationId, body),
  }),
  defineRoute({
    method: 'GET',
    path: '/tenant/branding',
    scope: 'organization',
    tag,
    summary: "Get the workspace's branding (nulls: the neutral look)",
    query: tenantQuery,
    response: brandingSchema,
    handler: ({ services, organizationId, query }) => services.tenant.getBranding(organizationId, query.workspace_id),
  }),
  defineRoute({
    method: 'POST',
    path: '/tenant/preview-domain',
    scope: 'organization',
    tag,
    summary: "Register the workspace's preview domain (one per workspace; replaces another); verify it next",
    body: setPreviewDomainSchema,
    response: previewDomainSchema,
    example: { workspace_id: 'ws_example', domain: 'preview.yourproduct.com' },
    handler: ({ services, organizationId, body }) => services.tenant.setPreviewDomain(organizationId, body),
  }),
  defineRoute({
    method: 'GET',
    path: '/tenant/preview-domain',
    scope: 'organization',
    tag,
    summary: "Get the workspace's preview domain, whether it is verified, and the DNS record it needs",
    query: tenantQuery,
    response: previewDomainSchema,
    handler: ({ services, organizationId, query }) => services.tenant.getPreviewDomain(organizationId, query.workspace_id),
  }),
  defineRoute({
    method: 'POST',
    path: '/tenant/preview-domain/verify',
    scope: 'organization',
    tag,
    summary: 'Verify the preview domain: it (or *.domain) must be a CNAME of cname_target; then previews are served under it',
    body: verifyPreviewDomainSchema,
    response: previewDomainSchema,
    example: { workspace_id: 'ws_example' },
    handler: ({ services, organizationId, body }) => services.tenant.verifyPreviewDomain(organizationId, body),
  }),
  defineRoute({
    method: 'DELETE',
    path: '/tenant/preview-domain',
    scope: 'organization',
    tag,
    summary: "Remove the workspace's preview domain: previews go back to the platform's hostnames",
    query: tenantQuery,
    response: previewDomainSchema,
    handler: ({ services, organizationId, query }) => services.tenant.deletePreviewDomain(organizationId, query.workspace_id),
  }),
]
