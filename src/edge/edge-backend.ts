import type { AppRoute, AppSite } from '../core/deployments.js'
import type { AccessGrant, AccessRefusal } from '../core/preview-access.js'
import type { PreviewRoute as HostRoute, PreviewSite } from '../core/preview-sites.js'
import type { Branding } from './error-page.js'

// What the edge needs from the rest of the platform, and nothing more: which sandbox port
// a host names, whether a request may see it, where to send it, and whose branding its
// pages wear. The edge (routing, proxying, cookies, pages) is written against this; the
// platform implements it over the store and core services (src/edge/platform-backend.ts).

// The shapes that cross it (routes, sites, grants) are the domain's own, declared once in
// core: the edge may import core, core never imports an adapter.
export type { AccessGrant, AccessRefusal, AppRoute, AppSite, HostRoute, PreviewSite }

export interface EdgeBackend {
  /** The site a host names, or undefined (unknown slug, destroyed sandbox, unverified tenant domain). */
  resolve(route: HostRoute): Promise<PreviewSite | undefined>
  /**
   * A token from the URL (`?token=mp_…` or `ms_…`) exchanged for an access cookie. A share
   * token with a password needs `password` (refused with passwordRequired until given;
   * wrong guesses are rate-limited per token and client address). Anything else, an API
   * key included, is refused.
   */
  exchange(site: PreviewSite, token: string, o: { password?: string | undefined; clientIp: string }): Promise<AccessGrant | AccessRefusal>
  /** Whether the access cookie's value admits this site (signed, unexpired, its token not revoked). */
  admits(site: PreviewSite, cookie: string): Promise<boolean>
  /** The app a managed hostname names, or undefined (unknown, or nothing published yet). */
  resolveApp(route: AppRoute): Promise<AppSite | undefined>
  /**
   * Calls `listener` when what a host serves may have changed in any process (a publish,
   * rollback or promote re-pointed a route), or when such news may have been missed: the
   * edge drops what it cached, so the next request sees the change.
   */
  onRouteChange?(listener: () => void): void
  /**
   * Where a dynamic app's traffic may go now: the addresses of its environment's healthy
   * runtime instances (empty: none is ready). Called per request: answered from a cache
   * without a promise; a promise only when the cache must be filled first.
   */
  appTargets(app: AppSite): readonly { host: string; port: number }[] | Promise<readonly { host: string; port: number }[]>
  /**
   * For a retry of a request whose instance failed, inside socket events: the targets known
   * now without waiting, even if an event marked them stale. Without it, retries use
   * appTargets when it answers without a promise.
   */
  knownAppTargets?(app: AppSite): readonly { host: string; port: number }[]
  /** A directory holding a static release's files, extracted once and never changed (with .gz/.br siblings where worth it). */
  releaseFiles(sha256: string): Promise<string>
  /** Where to connect for the site: a paused sandbox is resumed first. Throws MiosaError (not_found, conflict, unavailable). */
  upstream(site: PreviewSite): Promise<{ host: string; port: number }>
  /**
   * True for a while after the sandbox was woken (resumed): a server that does not answer
   * yet is probably still starting, so a browser gets a page that waits for it, not a 502.
   */
  waking?(sandboxId: string): boolean
  /** Traffic is activity: no auto-suspend while a preview is used. */
  touch(sandboxId: string): void
  /** Holds the sandbox awake while a long-lived connection (WebSocket, event stream) is open; call the result to let go. */
  hold(sandboxId: string): () => void
  /**
   * The tenant's branding for a page about one of its sandboxes (by workspace), or about a
   * host under its preview domain that names nothing (by domain); undefined: the neutral look.
   * Cached for at most 30 s, so a change shows within a minute.
   */
  branding(of: { workspaceId: string } | { tenantDomain: string }): Promise<Branding | undefined>
}
