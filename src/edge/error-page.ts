// Pages the edge renders itself (404, 502, 401, password prompts, a sandbox starting). Every interpolated
// value is escaped; the tenant's branding replaces the neutral look, never adds to it.
// No page carries a miosa wordmark: a tenant's visitors see the tenant's look or a neutral one.

export interface Branding {
  logo_url?: string | null
  accent_color?: string | null
  support_url?: string | null
}

export interface ErrorPage {
  status: number
  title: string
  message: string
  branding?: Branding | undefined
}

const NEUTRAL_ACCENT = '#4b5563'

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

export function renderErrorPage(page: ErrorPage): string {
  return renderPage(page, '')
}

/** Seconds between a starting page's reloads. */
export const STARTING_RELOAD_S = 2

/**
 * The page a browser sees while a woken sandbox's server is not answering yet: it reloads
 * itself (a meta refresh, which the pages' no-script policy allows) until the server answers.
 */
export function renderStartingPage(page: Omit<ErrorPage, 'status'>): string {
  return renderPage({ ...page, status: 503 }, '', `<meta http-equiv="refresh" content="${STARTING_RELOAD_S}">\n`)
}

export interface PasswordPage {
  status: number
  /** Shown above the form: what to do, or why the last guess was refused. */
  message: string
  branding?: Branding | undefined
}

/**
 * The password prompt of a share link. The form has no action: it posts to the page's own
 * URL, token included, so a crafted path (`//evil.example/…`) cannot send the password
 * elsewhere.
 */
export function renderPasswordPage(page: PasswordPage): string {
  const form = `<form method="post" autocomplete="off">
<label for="password">Password</label>
<input id="password" name="password" type="password" required autofocus>
<button type="submit">Open</button>
</form>
`
  return renderPage({ status: page.status, title: 'This link needs a password', message: page.message, branding: page.branding }, form)
}

function renderPage(page: ErrorPage, extra: string, head = ''): string {
  const accent = /^#(?:[0-9a-f]{3}|[0-9a-f]{6})$/i.test(page.branding?.accent_color ?? '')
    ? (page.branding?.accent_color as string)
    : NEUTRAL_ACCENT
  const logo = safeHttpsUrl(page.branding?.logo_url)
  const support = safeHttpsUrl(page.branding?.support_url)
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
${head}<title>${page.status} · ${escapeHtml(page.title)}</title>
<style>
  body { margin: 0; min-height: 100vh; display: grid; place-items: center; font: 16px/1.5 system-ui, sans-serif; color: #1f2937; background: #f9fafb; }
  main { max-width: 32rem; padding: 2rem; text-align: center; }
  h1 { color: ${accent}; font-size: 1.5rem; margin: 1rem 0 .5rem; }
  .status { font-size: .875rem; letter-spacing: .1em; color: #6b7280; }
  img { max-height: 48px; max-width: 200px; }
  a { color: ${accent}; }
  form { display: grid; gap: .5rem; margin-top: 1rem; text-align: left; }
  input { font: inherit; padding: .5rem; border: 1px solid #d1d5db; border-radius: .375rem; }
  button { font: inherit; padding: .5rem; border: 0; border-radius: .375rem; color: #fff; background: ${accent}; cursor: pointer; }
</style>
</head>
<body>
<main>
${logo === undefined ? '' : `<img src="${escapeHtml(logo)}" alt="">`}
<div class="status">${page.status}</div>
<h1>${escapeHtml(page.title)}</h1>
<p>${escapeHtml(page.message)}</p>
${extra}${support === undefined ? '' : `<p><a href="${escapeHtml(support)}" rel="noopener">Get help</a></p>`}
</main>
</body>
</html>
`
}

function safeHttpsUrl(value: string | null | undefined): string | undefined {
  if (value === null || value === undefined) return undefined
  try {
    return new URL(value).protocol === 'https:' ? value : undefined
  } catch {
    return undefined
  }
}
