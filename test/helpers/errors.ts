import { expect } from 'vitest'
import { MiosaError } from '../../src/core/errors.js'
import type { ErrorCode } from '../../src/core/errors.js'

/** The rejection of `promise`, failing the test when it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  let resolved = false
  const error = await promise.then(
    () => {
      resolved = true
      return undefined
    },
    (e: unknown) => e,
  )
  if (resolved) expect.fail('expected the call to reject, but it resolved')
  return error
}

/** Awaits a MiosaError with this code (and, when given, naming this field in its details). */
export async function expectMiosaError(promise: Promise<unknown>, code: ErrorCode, field?: string): Promise<MiosaError> {
  const error = await rejection(promise)
  expect(error).toBeInstanceOf(MiosaError)
  const miosa = error as MiosaError
  expect(miosa.code).toBe(code)
  if (field !== undefined) expect(miosa.details).toMatchObject({ field })
  return miosa
}
