// The wire protocol between the platform and the agent that runs inside every sandbox
// container (src/runtime/agent/agent.ts). HTTP/1.1 on AGENT_PORT of the container's own
// address, reached by the platform over the workspace network with keep-alive. Every
// request carries AGENT_TOKEN_HEADER with the per-sandbox token the container was
// started with (env MIOSA_AGENT_TOKEN); anything else is a 401.
//
// Types and constants only: the agent imports this file with `import type` and its own
// copies of the constants, so it stays one self-contained file inside the container.

export const AGENT_PORT = 49983
export const AGENT_TOKEN_HEADER = 'x-miosa-agent-token'
export const AGENT_TOKEN_ENV = 'MIOSA_AGENT_TOKEN'
/** Optional "uid:gid": files and directories the agent creates are given to this user, so a non-root user can edit them. */
export const AGENT_OWNER_ENV = 'MIOSA_AGENT_OWNER'
/** Optional: listen on this port instead of AGENT_PORT (0: any free port), for running the agent on a host in tests. */
export const AGENT_PORT_ENV = 'MIOSA_AGENT_PORT'
/** Where the agent (and the Node.js that runs it) is mounted read-only in every container. */
export const AGENT_DIR = '/opt/miosa/agent'

/** GET /health → 200 */
export interface AgentHealth {
  ok: true
  version: string
  pid: number
  uptime_ms: number
}

/**
 * POST /exec → 200 ExecResponse (buffered), or with `?stream=1` an NDJSON response of
 * ExecEvent lines ending with one `exit` event. In the streaming form the request body
 * is NDJSON too: the first line is the ExecRequest, then `stdin` / `stdin_end` events.
 *
 * The command runs with spawn(argv[0], argv.slice(1)) and no shell; callers wanting a
 * shell send ['sh', '-lc', script]. The command is a session and process group of its
 * own; when it exits, times out or the request is cancelled, everything it started
 * (`npm run dev &` included, and children that left its group or session) is killed
 * before the answer. What must keep running is a service (POST /services).
 */
export interface ExecRequest {
  argv: string[]
  /** Default /workspace (created if missing). */
  cwd?: string
  /** Added to the container's environment. */
  env?: Record<string, string>
  /** Kill the process group after this many ms; the response then has timed_out: true and exit_code 124. */
  timeout_ms?: number
  /** Stdin for the buffered form, base64. */
  stdin_base64?: string
  /** Per stream; beyond it output is dropped and `truncated` is true. Default 1 MiB. */
  max_output_bytes?: number
  /** Run as this user instead of root (numeric ids; gid defaults to uid). */
  uid?: number
  gid?: number
}

/**
 * POST /services {id, ...ExecRequest without timeout_ms, stdin_base64} → 200 ServiceStarted:
 * starts the command in the background, in its own process group, stdout and stderr
 * appended to log_path; a service already running under that id is ended first.
 * DELETE /services?id=ID → 200 { stopped: boolean }: ends its process group (SIGKILL).
 */
export interface ServiceStarted {
  id: string
  pid: number
  log_path: string
}

export interface ExecResponse {
  exit_code: number
  stdout: string
  stderr: string
  truncated: boolean
  timed_out: boolean
  duration_ms: number
}

export type ExecEvent =
  | { type: 'stdout'; data: string /* base64 */ }
  | { type: 'stderr'; data: string /* base64 */ }
  | { type: 'exit'; exit_code: number; timed_out: boolean; duration_ms: number; truncated: boolean }
  | { type: 'error'; message: string }

/** The last event of a streamed exec. */
export type ExecExit = Extract<ExecEvent, { type: 'exit' }>

export type ExecInputEvent = { type: 'stdin'; data: string /* base64 */ } | { type: 'stdin_end' }

/**
 * Files. Paths are absolute inside the container, or relative to /workspace. With
 * AGENT_OWNER_ENV set, these routes run as that user: what it may not read or write is a
 * 403 `forbidden`; files of /proc and /sys are read whole (bounded), devices and FIFOs are 400.
 * - GET    /files?path=P             → the bytes (application/octet-stream); 404 missing, 400 a directory
 * - PUT    /files?path=P[&mode=644]  → writes the request body atomically (temp + rename), creating parent dirs → 200 FileStat
 * - GET    /files/stat?path=P        → FileStat (lstat: a symlink is reported as one)
 * - GET    /files/list?path=P        → { entries: FileStat[] } sorted by name
 * - POST   /files/mkdir  { path }    → FileStat (parents created; an existing dir is fine)
 * - POST   /files/move   { from, to, overwrite? } → FileStat of `to`; 409 when `to` exists and !overwrite
 * - DELETE /files?path=P[&recursive=1] → { deleted: true }; a non-empty dir without recursive is 409
 * - GET    /archive?path=DIR          → tar of DIR's contents (application/x-tar)
 * - PUT    /archive?path=DIR          → extracts the tar body into DIR (created) → 200 FileStat of DIR;
 *                                       the platform has already refused entries that would escape DIR
 * Errors are JSON AgentError with the status above (400 bad input, 403, 404, 409, 413 disk full, 500).
 */
export interface FileStat {
  name: string
  path: string
  type: 'file' | 'dir' | 'symlink' | 'other'
  size: number
  /** Permission bits, e.g. 0o644 as a number. */
  mode: number
  mtime: string
  /** For symlinks: where it points. */
  target?: string
}

export interface AgentError {
  error: { code: 'invalid' | 'forbidden' | 'not_found' | 'conflict' | 'payload_too_large' | 'internal' | 'unauthenticated'; message: string }
}
