import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto'
import { MiosaError } from './errors.js'

// Env values at rest: ChaCha20-Poly1305 (node:crypto) under the platform's 256-bit master
// key, a random 12-byte nonce per value, and associated data naming the deployment, the
// environment and the key the value belongs to, so a ciphertext copied into another row
// fails to decrypt. Every sealed value records the id of the key that sealed it; a keyring
// holds the current key and, during a rotation, older ones still needed to open old rows.

export const MASTER_KEY_BYTES = 32
const NONCE_BYTES = 12
const TAG_BYTES = 16
const ALGORITHM = 'chacha20-poly1305'

/** Where a value belongs: bound into its ciphertext as associated data. */
export interface SealBinding {
  deployment_id: string
  environment: string
  key: string
}

/** A value as stored: ciphertext with its 16-byte tag appended, and its nonce (both base64), and the sealing key's id. */
export interface SealedValue {
  ciphertext: string
  nonce: string
  key_id: string
}

/** The id recorded with each ciphertext: the first 16 hex characters of the key's SHA-256 (never the key). */
export function keyIdOf(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 16)
}

export function generateMasterKey(): Buffer {
  return randomBytes(MASTER_KEY_BYTES)
}

/** A master key written as base64 (or base64url) or hex of exactly 32 bytes; anything else is refused (the text is never echoed). */
export function parseMasterKey(text: string, field = 'master key'): Buffer {
  const trimmed = text.trim()
  const key = /^[0-9a-f]{64}$/i.test(trimmed)
    ? Buffer.from(trimmed, 'hex')
    : /^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)
      ? Buffer.from(trimmed.replaceAll('-', '+').replaceAll('_', '/'), 'base64')
      : Buffer.alloc(0)
  if (key.length !== MASTER_KEY_BYTES) {
    throw new MiosaError('invalid', `${field}: must be ${MASTER_KEY_BYTES} bytes written as base64 or hex (64 hex digits)`, { details: { field } })
  }
  return key
}

/** How a key is written in files and shown to no one: base64. */
export function formatMasterKey(key: Buffer): string {
  return key.toString('base64')
}

function associatedData(binding: SealBinding): Buffer {
  // JSON keeps the three parts unambiguous whatever characters they hold.
  return Buffer.from(JSON.stringify(['miosa-env-v1', binding.deployment_id, binding.environment, binding.key]), 'utf8')
}

export class Keyring {
  private readonly keys = new Map<string, Buffer>()
  private currentId: string

  /** `current` seals new values; `older` keys only open values they sealed. */
  constructor(current: Buffer, older: readonly Buffer[] = []) {
    this.currentId = this.add(current)
    for (const key of older) this.add(key)
  }

  get currentKeyId(): string {
    return this.currentId
  }

  /** Ids of every key held, the current one first. */
  get keyIds(): string[] {
    return [this.currentId, ...[...this.keys.keys()].filter((id) => id !== this.currentId)]
  }

  has(keyId: string): boolean {
    return this.keys.has(keyId)
  }

  /** Makes `key` the one new values are sealed with; the others keep opening what they sealed. */
  makeCurrent(key: Buffer): string {
    this.currentId = this.add(key)
    return this.currentId
  }

  /** Forgets every key but the current one. */
  dropOlder(): void {
    for (const id of [...this.keys.keys()]) if (id !== this.currentId) this.keys.delete(id)
  }

  /** The keys, current first: what a key store persists. */
  exportKeys(): Buffer[] {
    return this.keyIds.map((id) => this.keys.get(id) as Buffer)
  }

  seal(plaintext: string, binding: SealBinding): SealedValue {
    const key = this.keys.get(this.currentId) as Buffer
    const nonce = randomBytes(NONCE_BYTES)
    const cipher = createCipheriv(ALGORITHM, key, nonce, { authTagLength: TAG_BYTES })
    const data = Buffer.from(plaintext, 'utf8')
    cipher.setAAD(associatedData(binding), { plaintextLength: data.length })
    const ciphertext = Buffer.concat([cipher.update(data), cipher.final(), cipher.getAuthTag()])
    return { ciphertext: ciphertext.toString('base64'), nonce: nonce.toString('base64'), key_id: this.currentId }
  }

  /** The plaintext of a sealed value; a value sealed for another row, under an unknown key, or altered throws (naming the key and environment, never a value). */
  open(sealed: SealedValue, binding: SealBinding): string {
    const where = `the value of ${binding.key} in environment ${binding.environment} of deployment ${binding.deployment_id}`
    const key = this.keys.get(sealed.key_id)
    if (key === undefined) {
      throw new MiosaError('internal', `${where} cannot be decrypted: it is sealed under master key ${sealed.key_id}, which this platform does not hold`, {
        details: { key: binding.key, environment: binding.environment, key_id: sealed.key_id },
      })
    }
    const data = Buffer.from(sealed.ciphertext, 'base64')
    const nonce = Buffer.from(sealed.nonce, 'base64')
    try {
      if (nonce.length !== NONCE_BYTES || data.length < TAG_BYTES) throw new Error('malformed')
      const decipher = createDecipheriv(ALGORITHM, key, nonce, { authTagLength: TAG_BYTES })
      decipher.setAAD(associatedData(binding), { plaintextLength: data.length - TAG_BYTES })
      decipher.setAuthTag(data.subarray(data.length - TAG_BYTES))
      return Buffer.concat([decipher.update(data.subarray(0, data.length - TAG_BYTES)), decipher.final()]).toString('utf8')
    } catch {
      throw new MiosaError(
        'internal',
        `${where} cannot be decrypted for that key/environment: the ciphertext was not sealed for this row or was altered (set the value again)`,
        { details: { key: binding.key, environment: binding.environment, key_id: sealed.key_id } },
      )
    }
  }

  private add(key: Buffer): string {
    if (key.length !== MASTER_KEY_BYTES) throw new MiosaError('invalid', `a master key must be ${MASTER_KEY_BYTES} bytes`)
    const id = keyIdOf(key)
    this.keys.set(id, Buffer.from(key))
    return id
  }
}

/**
 * Where the master key lives (a file in the data dir, or MIOSA_MASTER_KEY): implemented
 * outside core. `load` answers the keys, current first (older ones only while a rotation
 * is unfinished), making the first one when there is none.
 */
export interface MasterKeySource {
  readonly kind: 'file' | 'env'
  load(): Promise<Buffer[]>
  /** Persists the keys (current first) atomically; a source that cannot (env) does nothing and says so by its kind. */
  save(keys: readonly Buffer[]): Promise<void>
}

/** A key kept in memory only (tests and tools that need no persistence): made on first load. */
export function memoryMasterKeySource(initial?: readonly Buffer[]): MasterKeySource {
  let keys: Buffer[] | undefined = initial === undefined ? undefined : [...initial]
  return {
    kind: 'file',
    load: async () => (keys ??= [generateMasterKey()]),
    save: async (next) => {
      keys = [...next]
    },
  }
}
