import { MiosaError } from './errors.js'
import { randomBase32 } from './ids.js'

// Slugs become DNS labels (`<deployment>.<workspace>.<base-domain>`), and `--` is
// reserved as the separator of `<deployment>--<environment>`, so a slug is
// lowercase letters, digits and single hyphens, never at either end.
export const SLUG_MAX_LENGTH = 40
export const SLUG_PATTERN = /^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*$/

export function isSlug(value: string): boolean {
  return value.length <= SLUG_MAX_LENGTH && SLUG_PATTERN.test(value)
}

/** A readable slug from a free-form name; `fallback` when nothing usable remains. */
export function slugify(name: string, fallback: string, maxLength = SLUG_MAX_LENGTH - 5): string {
  const slug = name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .slice(0, maxLength)
    .replace(/^-+|-+$/g, '')
  return slug === '' ? fallback : slug
}

/** The same slug with a short random suffix, for when the plain one is taken. */
export function withRandomSuffix(slug: string): string {
  return `${slug.slice(0, SLUG_MAX_LENGTH - 5).replace(/-+$/, '')}-${randomBase32(4)}`
}

/**
 * Inserts a row under a unique slug. A slug the caller asked for is theirs or a 409;
 * one derived from the name gets a random suffix when taken. The database's unique
 * constraint decides, so two concurrent creates never share a slug.
 */
export async function insertWithSlug<T>(
  requested: string | undefined,
  derived: string,
  insert: (slug: string) => Promise<T>,
): Promise<T> {
  if (requested !== undefined) {
    try {
      return await insert(requested)
    } catch (error) {
      if (isSlugConflict(error)) {
        throw new MiosaError('conflict', `slug "${requested}" is already taken; choose another`, {
          details: { field: 'slug' },
        })
      }
      throw error
    }
  }
  for (let attempt = 0; ; attempt++) {
    try {
      return await insert(attempt === 0 ? derived : withRandomSuffix(derived))
    } catch (error) {
      if (!isSlugConflict(error) || attempt >= 5) throw error
    }
  }
}

function isSlugConflict(error: unknown): boolean {
  return (
    error instanceof MiosaError &&
    error.code === 'conflict' &&
    (error.details as { field?: string } | undefined)?.field === 'slug'
  )
}

// Deployment environment names and their slugs. A name is one or two lowercase segments
// joined by `/` (`production`, `qa`, `preview/pr-42`); each segment is letters, digits and
// hyphens, starting and ending with a letter or digit. Its slug, the name with `/` → `-`, is
// the DNS-label part of its URL: `<deployment-slug>--<environment-slug>.<workspace-slug>.<base-domain>`.

export const ENVIRONMENT_NAME_MAX_LENGTH = 40
export const PRODUCTION = 'production'
export const STAGING = 'staging'
/** Every project has these from its creation; a deployment outside a project has only these. */
export const DEFAULT_ENVIRONMENTS = [PRODUCTION, STAGING] as const

const SEGMENT = '[a-z0-9](?:[a-z0-9-]*[a-z0-9])?'
export const ENVIRONMENT_NAME_PATTERN = new RegExp(`^${SEGMENT}(?:/${SEGMENT})?$`)
export const ENVIRONMENT_NAME_RULE =
  'lowercase letters, digits and hyphens (not at either end), in at most two segments joined by one "/" (e.g. "qa", "preview/pr-42"), at most 40 characters'

export function isEnvironmentName(value: string): boolean {
  return value.length <= ENVIRONMENT_NAME_MAX_LENGTH && ENVIRONMENT_NAME_PATTERN.test(value)
}

/** The DNS-label form of a (valid) environment name: `preview/pr-42` → `preview-pr-42`. */
export function environmentSlugOf(name: string): string {
  return name.replace('/', '-')
}
