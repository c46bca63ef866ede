import { request } from 'node:http'
import { connect } from 'node:net'
import type { HealthCheck } from '../schemas/deployments.js'

// One health check of one runtime instance, from the platform's host (where the edge
// connects from too): an HTTP GET of the configured path answered
// with a 2xx or 3xx, or, without a path, a TCP connection accepted on its port. Never
// throws: the answer says whether it passed and, if not, why (shown in instance events).

import type { HealthResult } from './instance-driver.js'

export function checkHealth(address: { host: string; port: number }, check: Pick<HealthCheck, 'path' | 'timeout_seconds'>): Promise<HealthResult> {
  const timeoutMs = Math.max(100, Math.round(check.timeout_seconds * 1000))
  return check.path === null ? checkTcp(address, timeoutMs) : checkHttp(address, check.path, timeoutMs)
}

function checkTcp(address: { host: string; port: number }, timeoutMs: number): Promise<HealthResult> {
  return new Promise((resolve) => {
    const socket = connect({ host: address.host, port: address.port })
    const done = (result: HealthResult) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(result)
    }
    const timer = setTimeout(() => done({ ok: false, reason: `no TCP connection within ${timeoutMs} ms` }), timeoutMs)
    socket.once('connect', () => done({ ok: true }))
    socket.once('error', (error: NodeJS.ErrnoException) => done({ ok: false, reason: `TCP connect failed (${error.code ?? error.message})` }))
  })
}

function checkHttp(address: { host: string; port: number }, path: string, timeoutMs: number): Promise<HealthResult> {
  return new Promise((resolve) => {
    let settled = false
    const done = (result: HealthResult) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      req.destroy()
      resolve(result)
    }
    const req = request({ host: address.host, port: address.port, path, method: 'GET', agent: false, headers: { 'user-agent': 'miosa-health-check', connection: 'close' } }, (res) => {
      const status = res.statusCode ?? 0
      res.resume()
      done(status >= 200 && status < 400 ? { ok: true } : { ok: false, reason: `GET ${path} answered ${status}` })
    })
    const timer = setTimeout(() => done({ ok: false, reason: `GET ${path} did not answer within ${timeoutMs} ms` }), timeoutMs)
    req.once('error', (error: NodeJS.ErrnoException) => done({ ok: false, reason: `GET ${path} failed (${error.code ?? error.message})` }))
    req.end()
  })
}
