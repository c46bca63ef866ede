/** The little of a logger that core needs; pino's Logger satisfies it. */
export interface Log {
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
}

export const silentLog: Log = { info: () => {}, warn: () => {}, error: () => {} }
