// The agent's configuration: read once from its environment, then removed from the
// environment every command inherits.

import { die } from './http.js'

// Copies of protocol.ts constants: the agent may take nothing but types from it.
const AGENT_PORT = 49983
const AGENT_TOKEN_ENV = 'MIOSA_AGENT_TOKEN'
const AGENT_OWNER_ENV = 'MIOSA_AGENT_OWNER'
const AGENT_PORT_ENV = 'MIOSA_AGENT_PORT'
/** Set only for the file server the agent starts as the sandbox user (./file-server.ts): the Unix socket it listens on. */
export const FILES_SOCKET_ENV = 'MIOSA_AGENT_FILES_SOCKET'

export const WORKSPACE = '/workspace'

export interface Owner {
  uid: number
  gid: number
}

export interface AgentConfig {
  port: number
  token: string
  /** The sandbox user: files the agent creates are given to it, and the file API runs as it. */
  owner: Owner | undefined
  /** This process is the file server for the main agent, listening here. */
  filesSocket: string | undefined
}

export const config = readConfig()

function readConfig(): AgentConfig {
  const env = process.env
  const token = env[AGENT_TOKEN_ENV] ?? ''
  const portText = env[AGENT_PORT_ENV]
  const ownerText = env[AGENT_OWNER_ENV]
  const filesSocket = env[FILES_SOCKET_ENV]
  delete env[AGENT_TOKEN_ENV]
  delete env[AGENT_PORT_ENV]
  delete env[AGENT_OWNER_ENV]
  delete env[FILES_SOCKET_ENV]
  if (filesSocket !== undefined && filesSocket !== '') return { port: 0, token: '', owner: undefined, filesSocket }
  if (token === '') die(`${AGENT_TOKEN_ENV} is not set`)
  const port = portText === undefined || portText === '' ? AGENT_PORT : Number(portText)
  if (!Number.isInteger(port) || port < 0 || port > 65535) die(`${AGENT_PORT_ENV} is not a port: ${portText}`)
  let owner: Owner | undefined
  if (ownerText !== undefined && ownerText !== '') {
    const match = /^(\d+):(\d+)$/.exec(ownerText)
    if (match === null) die(`${AGENT_OWNER_ENV} is not uid:gid: ${ownerText}`)
    owner = { uid: Number(match[1]), gid: Number(match[2]) }
    // Only root may give files away; a non-root agent (on a host, in tests) leaves them as they are.
    if (process.getuid?.() !== 0) owner = undefined
  }
  return { port, token, owner, filesSocket: undefined }
}

/** Root may give files away; the file server (the sandbox user) writes them as its own. */
export const isRoot = process.getuid?.() === 0
