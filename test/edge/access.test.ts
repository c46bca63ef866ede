import { describe, expect, it } from 'vitest'
import { accessCookieOf, tokenOf } from '../../src/edge/access.js'
import { withoutCookie } from '../../src/edge/proxy.js'

describe('preview link tokens', () => {
  it('takes the token out of the URL and keeps the other parameters as written', () => {
    expect(tokenOf('/app?token=mp_abc')).toEqual({ token: 'mp_abc', location: '/app' })
    expect(tokenOf('/app/page?x=1&token=mp_abc&y=a%20b')).toEqual({ token: 'mp_abc', location: '/app/page?x=1&y=a%20b' })
    expect(tokenOf('/?token=mp_a%2Bb&token=second')).toEqual({ token: 'mp_a+b', location: '/' })
    expect(tokenOf('/?tok%65n=ms_x')).toEqual({ token: 'ms_x', location: '/' })
  })

  it('finds none where there is none', () => {
    expect(tokenOf('/')).toBeUndefined()
    expect(tokenOf('/token=mp_abc')).toBeUndefined()
    expect(tokenOf('/?mytoken=mp_abc')).toBeUndefined()
    expect(tokenOf('/?tokens=1')).toBeUndefined()
  })

  it('never redirects off the host', () => {
    expect(tokenOf('//evil.example/x?token=mp_a')?.location).toBe('/evil.example/x')
    expect(tokenOf('/\\evil.example/x?token=mp_a')?.location).toBe('/evil.example/x')
    expect(tokenOf('///evil.example?token=mp_a&q=1')?.location).toBe('/evil.example?q=1')
  })
})

describe('access cookie', () => {
  it('reads the value of miosa_access from Cookie headers', () => {
    expect(accessCookieOf(['Cookie', 'miosa_access=abc'])).toBe('abc')
    expect(accessCookieOf(['cookie', 'a=1; miosa_access=abc.def; b=2'])).toBe('abc.def')
    expect(accessCookieOf(['Host', 'x', 'COOKIE', 'a=1;miosa_access=v'])).toBe('v')
    expect(accessCookieOf(['Cookie', 'xmiosa_access=abc'])).toBeUndefined()
    expect(accessCookieOf(['Cookie', 'xmiosa_access=abc; miosa_access=real'])).toBe('real')
    expect(accessCookieOf(['Cookie', 'miosa_access='])).toBeUndefined()
    expect(accessCookieOf(['X-Cookie', 'miosa_access=abc'])).toBeUndefined()
    expect(accessCookieOf([])).toBeUndefined()
  })

  it('is removed from the Cookie header sent upstream', () => {
    expect(withoutCookie('a=1; miosa_access=abc; b=2', 'miosa_access=')).toBe('a=1; b=2')
    expect(withoutCookie('miosa_access=abc', 'miosa_access=')).toBe('')
  })
})
