import { describe, expect, it } from 'vitest'
import { MiosaError } from '../../src/core/errors.js'
import { Keyring, generateMasterKey, keyIdOf, parseMasterKey } from '../../src/core/secret-box.js'

// The sealing of env values on its own: the binding to (deployment, environment, key), the
// key id each value records, and a keyring holding more than one key during a rotation.

const binding = { deployment_id: 'dep_a', environment: 'production', key: 'STRIPE_KEY' }
const VALUE = 'sk_live_secret-box-value ✓'

function openError(fn: () => unknown): MiosaError {
  try {
    fn()
  } catch (error) {
    expect(error).toBeInstanceOf(MiosaError)
    return error as MiosaError
  }
  throw new Error('expected it to throw')
}

describe('secret box', () => {
  it('seals with a fresh 12-byte nonce and a 16-byte tag, and opens only for the same deployment, environment and key', () => {
    const ring = new Keyring(generateMasterKey())
    const a = ring.seal(VALUE, binding)
    const b = ring.seal(VALUE, binding)
    expect(a.nonce).not.toBe(b.nonce)
    expect(Buffer.from(a.nonce, 'base64')).toHaveLength(12)
    expect(Buffer.from(a.ciphertext, 'base64')).toHaveLength(Buffer.byteLength(VALUE) + 16)
    expect(a.key_id).toBe(ring.currentKeyId)
    expect(ring.open(a, binding)).toBe(VALUE)
    for (const other of [{ ...binding, deployment_id: 'dep_b' }, { ...binding, environment: 'staging' }, { ...binding, key: 'OTHER' }]) {
      const error = openError(() => ring.open(a, other))
      expect(error.code).toBe('internal')
      expect(error.message).toContain(`the value of ${other.key} in environment ${other.environment}`)
      expect(error.message).toContain('cannot be decrypted for that key/environment')
      expect(error.message.includes(VALUE)).toBe(false)
    }
    const tampered = Buffer.from(a.ciphertext, 'base64')
    tampered[0] = (tampered[0] as number) ^ 1
    expect(() => ring.open({ ...a, ciphertext: tampered.toString('base64') }, binding)).toThrow(/cannot be decrypted/)
  })

  it('names the key a value needs when the ring does not hold it; a rotated ring opens both until the old key is dropped', () => {
    const oldKey = generateMasterKey()
    const ring = new Keyring(oldKey)
    const sealed = ring.seal(VALUE, binding)
    expect(openError(() => new Keyring(generateMasterKey()).open(sealed, binding)).message).toContain(`master key ${keyIdOf(oldKey)}`)
    const fresh = generateMasterKey()
    ring.makeCurrent(fresh)
    const resealed = ring.seal(VALUE, binding)
    expect(resealed.key_id).toBe(keyIdOf(fresh))
    expect(ring.open(sealed, binding)).toBe(VALUE)
    expect(ring.exportKeys().map(keyIdOf)).toEqual([keyIdOf(fresh), keyIdOf(oldKey)])
    ring.dropOlder()
    expect(ring.keyIds).toEqual([keyIdOf(fresh)])
    expect(() => ring.open(sealed, binding)).toThrow(/does not hold/)
    expect(ring.open(resealed, binding)).toBe(VALUE)
  })

  it('reads a master key as hex or base64 of 32 bytes and refuses anything else without echoing it', () => {
    const key = generateMasterKey()
    expect(parseMasterKey(key.toString('hex'))).toEqual(key)
    expect(parseMasterKey(key.toString('base64'))).toEqual(key)
    expect(parseMasterKey(` ${key.toString('base64url')}\n`)).toEqual(key)
    expect(keyIdOf(key)).toMatch(/^[0-9a-f]{16}$/)
    for (const bad of ['short-secret-text', key.subarray(0, 31).toString('base64'), `${key.toString('hex')}00`]) {
      const error = openError(() => parseMasterKey(bad, 'MIOSA_MASTER_KEY'))
      expect(error.code).toBe('invalid')
      expect(error.message.includes(bad)).toBe(false)
      expect(error.message).toMatch(/^MIOSA_MASTER_KEY: must be 32 bytes/)
    }
  })
})
