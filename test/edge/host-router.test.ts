import { describe, expect, it } from 'vitest'
import { createHostRouter, normalizeHost } from '../../src/edge/host-router.js'

describe('host router', () => {
  const route = createHostRouter('localhost')

  it('reads <port>-<slug> and <slug> under sandbox.<base-domain>', () => {
    expect(route('3000-ab12cd34.sandbox.localhost:8081')).toEqual({ kind: 'preview', slug: 'ab12cd34', port: 3000 })
    expect(route('ab12cd34.sandbox.localhost')).toEqual({ kind: 'preview', slug: 'ab12cd34', port: undefined })
    expect(route('1-a.sandbox.localhost')).toEqual({ kind: 'preview', slug: 'a', port: 1 })
    expect(route('65535-a.sandbox.localhost')).toEqual({ kind: 'preview', slug: 'a', port: 65_535 })
    expect(route('my-app-2.sandbox.localhost')).toEqual({ kind: 'preview', slug: 'my-app-2', port: undefined })
  })

  it('lowercases, and accepts the trailing dot of a fully qualified name', () => {
    expect(route('3000-AB12CD34.Sandbox.LOCALHOST:8081')).toEqual({ kind: 'preview', slug: 'ab12cd34', port: 3000 })
    expect(route('3000-ab12cd34.sandbox.localhost.')).toEqual({ kind: 'preview', slug: 'ab12cd34', port: 3000 })
    expect(route('3000-ab12cd34.sandbox.localhost.:80')).toEqual({ kind: 'preview', slug: 'ab12cd34', port: 3000 })
  })

  it('refuses ports out of range or written oddly', () => {
    expect(route('0-ab.sandbox.localhost')).toBeUndefined()
    expect(route('65536-ab.sandbox.localhost')).toBeUndefined()
    expect(route('03000-ab.sandbox.localhost')).toBeUndefined()
    expect(route('3000--ab.sandbox.localhost')).toBeUndefined()
  })

  it('refuses junk', () => {
    for (const host of [
      undefined,
      '',
      ':8081',
      'sandbox.localhost',
      '.sandbox.localhost',
      'a..sandbox.localhost',
      'a.b.sandbox.localhost',
      '-ab.sandbox.localhost',
      'ab-.sandbox.localhost',
      'a_b.sandbox.localhost',
      'a b.sandbox.localhost',
      'ab.sandbox.localhost:',
      'ab.sandbox.localhost:80x',
      'ab.sandbox.localhost/evil',
      'ab.sandbox.localhost@evil',
      'ümlaut.sandbox.localhost',
      `${'a'.repeat(64)}.sandbox.localhost`,
      `${'a.'.repeat(130)}localhost`,
      'localhost',
      'localhost:8081',
      '127.0.0.1',
      '127.0.0.1:8081',
      '[::1]:8081',
      '[::1]',
    ]) {
      expect(route(host), String(host)).toBeUndefined()
    }
  })

  it('names a tenant preview domain for any other host of three labels or more', () => {
    expect(route('ab12cd34.preview.example.com')).toEqual({ kind: 'preview', slug: 'ab12cd34', port: undefined, tenantDomain: 'preview.example.com' })
    expect(route('3000-ab12cd34.Preview.Example.com:443')).toEqual({ kind: 'preview', slug: 'ab12cd34', port: 3000, tenantDomain: 'preview.example.com' })
    expect(route('ab12cd34.example.com')).toEqual({ kind: 'preview', slug: 'ab12cd34', port: undefined, tenantDomain: 'example.com' })
    expect(route('example.com')).toBeUndefined()
    expect(route('10.0.0.1')).toBeUndefined()
  })

  it('reads <deployment>.<workspace>.<base-domain> as a published app', () => {
    expect(route('smile-dental.acme.localhost')).toEqual({ kind: 'app', deploymentSlug: 'smile-dental', workspaceSlug: 'acme' })
    expect(route('Smile-Dental.ACME.localhost.:8081')).toEqual({ kind: 'app', deploymentSlug: 'smile-dental', workspaceSlug: 'acme' })
    expect(route('3000-app.acme.localhost')).toEqual({ kind: 'app', deploymentSlug: '3000-app', workspaceSlug: 'acme' })
    // One label under the base domain names nothing; three or more is a tenant preview domain, never an app.
    expect(route('foo.localhost')).toBeUndefined()
    expect(route('a.b.c.localhost')).toEqual({ kind: 'preview', slug: 'a', port: undefined, tenantDomain: 'b.c.localhost' })
    // `sandbox` is the previews' label, never a workspace.
    expect(route('abc.sandbox.localhost')).toEqual({ kind: 'preview', slug: 'abc', port: undefined })
    const r = createHostRouter('apps.example.net')
    expect(r('site.team.apps.example.net')).toEqual({ kind: 'app', deploymentSlug: 'site', workspaceSlug: 'team' })
    expect(r('team.apps.example.net')).toEqual({ kind: 'preview', slug: 'team', port: undefined, tenantDomain: 'apps.example.net' })
    expect(r('site.team.other.example.net')).toEqual({ kind: 'preview', slug: 'site', port: undefined, tenantDomain: 'team.other.example.net' })
  })

  it('reads <deployment>--<environment>.<workspace>.<base-domain> as another environment of an app, split at the first --', () => {
    expect(route('smile-dental--staging.acme.localhost')).toEqual({ kind: 'app', deploymentSlug: 'smile-dental', workspaceSlug: 'acme', environmentSlug: 'staging' })
    expect(route('Smile-Dental--Preview-PR-42.acme.localhost:8081')).toEqual({
      kind: 'app',
      deploymentSlug: 'smile-dental',
      workspaceSlug: 'acme',
      environmentSlug: 'preview-pr-42',
    })
    // Deployment slugs never contain `--`, so the first one is the separator; the rest is the environment's.
    expect(route('app--qa--x.acme.localhost')).toEqual({ kind: 'app', deploymentSlug: 'app', workspaceSlug: 'acme', environmentSlug: 'qa--x' })
    // Production has no suffix: a plain label has no environmentSlug at all.
    expect(route('app.acme.localhost')).not.toHaveProperty('environmentSlug')
    // `--` in the workspace label is not an environment separator.
    expect(route('app.ac--me.localhost')).toEqual({ kind: 'app', deploymentSlug: 'app', workspaceSlug: 'ac--me' })
    const r = createHostRouter('apps.example.net')
    expect(r('site--canary.team.apps.example.net')).toEqual({ kind: 'app', deploymentSlug: 'site', workspaceSlug: 'team', environmentSlug: 'canary' })
  })

  it('names no app for an empty or malformed environment part', () => {
    // A label never starts or ends with `-`; a third hyphen leaves an environment starting with one.
    for (const host of ['app--.acme.localhost', '--qa.acme.localhost', 'app---qa.acme.localhost']) {
      expect(route(host)?.kind, host).not.toBe('app')
    }
  })

  it('works for other base domains', () => {
    const r = createHostRouter('Miosa.Example.NET')
    expect(r('8080-xyz.sandbox.miosa.example.net')).toEqual({ kind: 'preview', slug: 'xyz', port: 8080 })
    expect(r('xyz.sandbox.localhost')).toEqual({ kind: 'preview', slug: 'xyz', port: undefined, tenantDomain: 'sandbox.localhost' })
  })

  it('normalizes host names', () => {
    expect(normalizeHost('A.Example.COM:80')).toBe('a.example.com')
    expect(normalizeHost('a.example.com')).toBe('a.example.com')
    expect(normalizeHost('a.example.com.')).toBe('a.example.com')
    expect(normalizeHost('1.2.3.4')).toBeUndefined()
  })
})
