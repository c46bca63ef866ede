import type { AppRoute, HostRoute } from './edge-backend.js'

// Host header → what it names, before any lookup. No regular expressions: this runs for
// every request that misses the edge's small per-host cache, so it is one pass of
// character checks.
//
//   <port>-<slug>.sandbox.<base-domain>   a port of a sandbox
//   <slug>.sandbox.<base-domain>          the sandbox template's default port
//   <port>-<slug>.<tenant-domain>         the same under a tenant preview domain
//   <slug>.<tenant-domain>                (at least three labels; the backend checks the
//                                          domain is a verified tenant preview domain)
//   <deployment>.<workspace>.<base-domain> a published app's production environment (exactly
//                                          two labels before the base domain, the second not `sandbox`)
//   <deployment>--<environment>.<workspace>.<base-domain>
//                                          another environment of it: the first label split at
//                                          its first `--` (deployment slugs never contain `--`)

const MAX_HOST_LENGTH = 253
const MAX_LABEL_LENGTH = 63

/** A sandbox preview, or a published app's managed hostname. */
export type EdgeRoute = PreviewRoute | ({ kind: 'app' } & AppRoute)
type PreviewRoute = { kind: 'preview' } & HostRoute

export type HostRouter = (host: string | undefined) => EdgeRoute | undefined

/** A router for one base domain: `sandbox.<baseDomain>` names sandbox previews, `<deployment>.<workspace>.<baseDomain>` apps. */
export function createHostRouter(baseDomain: string): HostRouter {
  const base = baseDomain.toLowerCase().replace(/\.$/, '')
  const sandboxSuffix = `.sandbox.${base}`
  const baseSuffix = `.${base}`
  return (header) => {
    const host = normalizeHost(header)
    if (host === undefined) return undefined
    if (!host.endsWith(sandboxSuffix) && host.endsWith(baseSuffix)) {
      const app = appRoute(host, baseSuffix)
      if (app !== undefined) return app
    }
    return previewRoute(host, sandboxSuffix)
  }
}

/**
 * The route a Host header names, or undefined: junk, an IP address, a bare name, a host
 * with more labels than one under `sandbox.<base-domain>`. Previews only.
 */
export function routeHost(header: string | undefined, sandboxSuffix: string): HostRoute | undefined {
  const host = normalizeHost(header)
  if (host === undefined) return undefined
  const route = previewRoute(host, sandboxSuffix)
  if (route === undefined) return undefined
  return route.tenantDomain === undefined ? { slug: route.slug, port: route.port } : { slug: route.slug, port: route.port, tenantDomain: route.tenantDomain }
}

/** `<deployment>.<workspace>` before the base suffix (a normalized host that ends with it), or undefined. */
function appRoute(host: string, baseSuffix: string): EdgeRoute | undefined {
  const end = host.length - baseSuffix.length
  const dot = host.indexOf('.')
  if (dot <= 0 || dot >= end) return undefined
  // Exactly two labels: no further dot before the suffix.
  if (host.indexOf('.', dot + 1) < end) return undefined
  const workspaceSlug = host.slice(dot + 1, end)
  if (workspaceSlug === 'sandbox') return undefined
  const separator = host.indexOf('--')
  if (separator === -1 || separator > dot) return { kind: 'app', deploymentSlug: host.slice(0, dot), workspaceSlug }
  // `<deployment>--<environment>`: both parts non-empty (the label's ends are never `-`).
  const environmentSlug = host.slice(separator + 2, dot)
  if (separator === 0 || environmentSlug.length === 0 || environmentSlug.charCodeAt(0) === 45) return undefined
  return { kind: 'app', deploymentSlug: host.slice(0, separator), workspaceSlug, environmentSlug }
}

function previewRoute(host: string, sandboxSuffix: string): PreviewRoute | undefined {
  if (host.endsWith(sandboxSuffix)) {
    const first = host.length - sandboxSuffix.length
    if (first === 0 || host.lastIndexOf('.', first - 1) !== -1) return undefined
    return parseLabel(host.slice(0, first), undefined)
  }
  const dot = host.indexOf('.')
  // At least three labels: <label>.<name>.<tld>.
  if (dot <= 0 || host.indexOf('.', dot + 1) === -1) return undefined
  return parseLabel(host.slice(0, dot), host.slice(dot + 1))
}

/**
 * The host name of a Host header: lowercase, without `:port` or a trailing dot; undefined
 * when it is not a DNS name (empty labels, characters outside [a-z0-9-], an IP literal).
 */
export function normalizeHost(header: string | undefined): string | undefined {
  if (header === undefined || header.length === 0) return undefined
  let end = header.length
  const colon = header.lastIndexOf(':')
  if (colon !== -1) {
    if (colon === end - 1) return undefined
    for (let i = colon + 1; i < end; i++) {
      const c = header.charCodeAt(i)
      if (c < 48 || c > 57) return undefined // also refuses IPv6 literals: `[::1]`
    }
    end = colon
  }
  if (end > 0 && header.charCodeAt(end - 1) === 46) end-- // trailing dot of an FQDN
  if (end === 0 || end > MAX_HOST_LENGTH) return undefined
  let labelStart = 0
  let lastLabelNumeric = true
  let lower = true
  for (let i = 0; i <= end; i++) {
    const c = i === end ? 46 : header.charCodeAt(i)
    if (c === 46) {
      const length = i - labelStart
      if (length === 0 || length > MAX_LABEL_LENGTH) return undefined
      if (header.charCodeAt(labelStart) === 45 || header.charCodeAt(i - 1) === 45) return undefined
      if (i !== end) lastLabelNumeric = true
      labelStart = i + 1
      continue
    }
    if (c >= 97 && c <= 122) lastLabelNumeric = false
    else if (c >= 65 && c <= 90) {
      lastLabelNumeric = false
      lower = false
    } else if (c === 45) lastLabelNumeric = false
    else if (c < 48 || c > 57) return undefined
  }
  // A name whose last label is all digits is an IPv4 address, never a preview host.
  if (lastLabelNumeric) return undefined
  const name = end === header.length ? header : header.slice(0, end)
  return lower ? name : name.toLowerCase()
}

/** `<port>-<slug>` or `<slug>`; the label is already a valid DNS label. */
function parseLabel(label: string, tenantDomain: string | undefined): PreviewRoute | undefined {
  const dash = label.indexOf('-')
  let port: number | undefined
  let slug = label
  if (dash > 0 && dash <= 5) {
    let value = 0
    let digits = true
    for (let i = 0; i < dash; i++) {
      const c = label.charCodeAt(i)
      if (c < 48 || c > 57) {
        digits = false
        break
      }
      value = value * 10 + (c - 48)
    }
    if (digits) {
      // A leading zero or an out-of-range number is no port: refuse rather than guess.
      if (label.charCodeAt(0) === 48 || value < 1 || value > 65_535) return undefined
      port = value
      slug = label.slice(dash + 1)
      if (slug.charCodeAt(0) === 45) return undefined
    }
  }
  return tenantDomain === undefined ? { kind: 'preview', slug, port } : { kind: 'preview', slug, port, tenantDomain }
}
