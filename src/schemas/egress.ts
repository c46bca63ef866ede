import { z } from 'zod'

// The egress policy of a sandbox on the wire: `allow_internet: false` closes everything
// beyond its workspace network, `egress.allow` opens chosen IPv4 addresses, CIDRs and
// host names again. Workspace networks are IPv4 only, so IPv6 entries are refused.

export const EGRESS_ALLOW_MAX = 64

const OCTET = '(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)'
const IPV4 = new RegExp(`^${OCTET}(\\.${OCTET}){3}$`)
const CIDR = new RegExp(`^${OCTET}(\\.${OCTET}){3}/(3[0-2]|[12]?\\d)$`)
const LABEL = '[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?'
const HOST = new RegExp(`^(?=.{1,253}$)${LABEL}(\\.${LABEL})*$`)

export const egressTargetSchema = z
  .string()
  .trim()
  .toLowerCase()
  .superRefine((value, ctx) => {
    if (value.includes(':')) ctx.addIssue({ code: 'custom', message: `"${value}": IPv6 is not supported (sandbox networks are IPv4 only)` })
    else if (!IPV4.test(value) && !CIDR.test(value) && (!HOST.test(value) || /^[\d.]+$/.test(value) || value.includes('/'))) {
      ctx.addIssue({ code: 'custom', message: `"${value.slice(0, 100)}" is not an IPv4 address, an IPv4 CIDR such as 10.0.0.0/8, or a host name` })
    }
  })
  .meta({ description: 'An IPv4 address, an IPv4 CIDR (10.0.0.0/8) or a host name (resolved to its IPv4 addresses when the rules are applied)' })

export const egressInputSchema = z
  .strictObject({
    allow: z.array(egressTargetSchema).max(EGRESS_ALLOW_MAX).meta({ description: 'Where it may still connect, beyond its workspace network' }),
  })
  .meta({ description: 'Restricts egress to these targets (implies allow_internet: false)' })

export const egressOutputSchema = z
  .object({ allow: z.array(z.string()) })
  .nullable()
  .meta({ description: 'Its egress allow-list (with allow_internet false); null: open' })
