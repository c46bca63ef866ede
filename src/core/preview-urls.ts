// Where a sandbox port is reached from a browser: `<port>-<slug>.sandbox.<base-domain>` on the
// edge, or `<port>-<slug>.<tenant-domain>` once the workspace's preview domain is verified.
// Clients never construct these: the API hands them out (sandbox `previews`, preview-url,
// tokens).

export interface PreviewUrlOptions {
  /** How users reach the edge: scheme, and a port when not the scheme's own; undefined: http on `edgePort`. */
  edgePublicUrl: string | undefined
  /** The edge's listening port; a function when it is known only once the edge listens (port 0 in tests). */
  edgePort: number | (() => number)
  baseDomain: string
}

export const DEFAULT_PREVIEW_URL_OPTIONS: PreviewUrlOptions = { edgePublicUrl: undefined, edgePort: 8081, baseDomain: 'localhost' }

export class PreviewUrls {
  constructor(private readonly options: PreviewUrlOptions = DEFAULT_PREVIEW_URL_OPTIONS) {}

  get baseDomain(): string {
    return this.options.baseDomain
  }

  /** The hostname suffix of the platform's own preview hosts: `sandbox.<base-domain>`. */
  get previewZone(): string {
    return `sandbox.${this.options.baseDomain}`
  }

  /** The URL to hand out: under the tenant domain when one is given (verified), else the platform's. */
  url(slug: string, port: number, tenantDomain?: string | null): string {
    return tenantDomain === undefined || tenantDomain === null ? this.platformUrl(slug, port) : this.tenantUrl(slug, port, tenantDomain)
  }

  platformUrl(slug: string, port: number): string {
    return this.origin(`${port}-${slug}.${this.previewZone}`)
  }

  tenantUrl(slug: string, port: number, domain: string): string {
    return this.origin(`${port}-${slug}.${domain}`)
  }

  /**
   * A published app's managed URL on the edge: `<deployment-slug>.<workspace-slug>.<base-domain>`
   * for production, `<deployment-slug>--<environment-slug>.<workspace-slug>.<base-domain>` for
   * any other environment (one DNS label: one wildcard certificate per workspace covers them all).
   */
  appUrl(deploymentSlug: string, workspaceSlug: string, environmentSlug?: string): string {
    const label = environmentSlug === undefined ? deploymentSlug : `${deploymentSlug}--${environmentSlug}`
    return this.origin(`${label}.${workspaceSlug}.${this.options.baseDomain}`)
  }

  /** The URL with `?token=` appended: what a browser opens to exchange the token for a cookie. */
  withToken(url: string, token: string): string {
    return `${url}/?token=${encodeURIComponent(token)}`
  }

  private origin(host: string): string {
    const { scheme, port } = this.edge()
    const defaultPort = scheme === 'https' ? 443 : 80
    return `${scheme}://${host}${port === defaultPort ? '' : `:${port}`}`
  }

  private edge(): { scheme: 'http' | 'https'; port: number } {
    const given = this.options.edgePublicUrl
    if (given === undefined) {
      const port = typeof this.options.edgePort === 'function' ? this.options.edgePort() : this.options.edgePort
      return { scheme: 'http', port }
    }
    const url = new URL(given)
    const scheme = url.protocol === 'https:' ? 'https' : 'http'
    return { scheme, port: url.port === '' ? (scheme === 'https' ? 443 : 80) : Number(url.port) }
  }
}
