import pino from 'pino'
import type { Logger } from 'pino'

// JSON lines for machines; pretty only when a person is watching a terminal.
// Credentials are redacted wherever a log line might carry request headers.
export function createLogger(opts: { level: string; pretty: boolean }): Logger {
  return pino({
    level: opts.level,
    base: { service: 'miosa' },
    redact: {
      paths: ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization', 'headers.cookie', '*.password', '*.key', '*.token'],
      censor: '[redacted]',
    },
    ...(opts.pretty ? { transport: { target: 'pino-pretty', options: { destination: 1, translateTime: 'HH:MM:ss.l' } } } : {}),
  })
}
