import { MiosaError } from './errors.js'

/** Who is calling, as established by the key they presented; `anonymous` on public routes only. */
export type Caller =
  | { kind: 'anonymous' }
  | { kind: 'root' }
  | { kind: 'organization'; organization_id: string; api_key_id: string }

export type OrganizationCaller = Extract<Caller, { kind: 'organization' }>

export function requireRoot(caller: Caller): void {
  if (caller.kind !== 'root') {
    throw new MiosaError('forbidden', 'this action needs the platform root key; organization keys cannot perform it')
  }
}

export function requireOrganization(caller: Caller): OrganizationCaller {
  if (caller.kind !== 'organization') {
    throw new MiosaError(
      'forbidden',
      'this action needs an organization key (msk_…); the root key manages organizations only — mint one with POST /api/v1/organizations/:id/api-keys',
    )
  }
  return caller
}
