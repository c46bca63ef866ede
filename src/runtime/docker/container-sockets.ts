import { readFile } from 'node:fs/promises'
import { PassThrough } from 'node:stream'
import type Dockerode from 'dockerode'
import { parseProcNetTcp } from '../proc-net-tcp.js'
import type { ListeningSocket } from '../proc-net-tcp.js'

// The listening sockets of a running container: its network namespace's /proc/net/tcp
// tables. Read through the host's /proc/<pid>/net when the platform shares the engine's
// host and PID namespace (no process started, works on images without a shell), else
// by `cat` inside the container.

const TABLES = ['tcp', 'tcp6'] as const

export async function listeningSocketsOf(docker: Dockerode, info: Dockerode.ContainerInspectInfo): Promise<ListeningSocket[]> {
  if (!info.State.Running) return []
  const fromHost = await readFromHost(info)
  if (fromHost !== undefined) return parseProcNetTcp(fromHost)
  return parseProcNetTcp(await catInside(docker.getContainer(info.Id), TABLES.map((t) => `/proc/net/${t}`)))
}

/** The tables through /proc/<pid>, when that pid is this container's process here; undefined otherwise. */
async function readFromHost(info: Dockerode.ContainerInspectInfo): Promise<string | undefined> {
  const pid = info.State.Pid
  if (!Number.isInteger(pid) || pid <= 0) return undefined
  try {
    // Another PID namespace would show some other process under that number: its cgroup names the container.
    const cgroup = await readFile(`/proc/${pid}/cgroup`, 'utf8')
    if (!cgroup.includes(info.Id)) return undefined
    const tables = await Promise.all(TABLES.map((t) => readFile(`/proc/${pid}/net/${t}`, 'utf8').catch(() => '')))
    return tables.join('')
  } catch {
    return undefined
  }
}

async function catInside(container: Dockerode.Container, paths: string[]): Promise<string> {
  const exec = await container.exec({ Cmd: ['cat', ...paths], AttachStdout: true, AttachStderr: true })
  const stream = await exec.start({ hijack: true, stdin: false })
  const stdout = new PassThrough()
  const chunks: Buffer[] = []
  stdout.on('data', (chunk: Buffer) => chunks.push(chunk))
  container.modem.demuxStream(stream, stdout, new PassThrough().resume())
  await new Promise<void>((resolve, reject) => {
    stream.on('end', resolve)
    stream.on('close', resolve)
    stream.on('error', reject)
  })
  return Buffer.concat(chunks).toString('utf8')
}
