import type { ContainerCreateOptions } from 'dockerode'

// Every container the platform starts (sandboxes, builders, runtime instances) is
// built here, so each gets the same: labels naming its organization, workspace and
// resource; the trusted CA bundle and the variables that point tools at it; CPU,
// memory and pids limits; Docker's default capabilities minus NET_RAW; no new
// privileges; tini as PID 1; and its workspace's network and nothing else.

export const LABEL = {
  managed: 'miosa.managed',
  platform: 'miosa.platform',
  kind: 'miosa.kind',
  organization: 'miosa.organization_id',
  workspace: 'miosa.workspace_id',
  sandbox: 'miosa.sandbox_id',
  template: 'miosa.template',
  /** On a sandbox's container: the snapshot (its image tag) it was started from. */
  snapshot: 'miosa.snapshot',
  deployment: 'miosa.deployment_id',
  environment: 'miosa.environment',
  version: 'miosa.version_id',
  instance: 'miosa.instance_id',
  /** On a one-off run's container (a release command): when it must have ended, as epoch ms. */
  oneOffDeadline: 'miosa.one_off_deadline',
  /** On a workspace network: what it is for ('sandboxes' when absent, 'apps'). */
  networkPurpose: 'miosa.network_purpose',
} as const

/** Where the trusted CA bundle is mounted. Not over the image's own bundle: apt must still be able to rewrite that. */
export const CA_BUNDLE_PATH = '/etc/miosa/ca-certificates.crt'

/** Every variable that common tools read to find trusted CAs. */
export const CA_ENV_VARS = ['NODE_EXTRA_CA_CERTS', 'SSL_CERT_FILE', 'REQUESTS_CA_BUNDLE', 'PIP_CERT', 'GIT_SSL_CAINFO', 'CURL_CA_BUNDLE'] as const

export interface ContainerSpec {
  name: string
  image: string
  kind: 'sandbox' | 'builder' | 'instance'
  /** This platform's id: a daemon shared by several platforms never mixes their containers up. */
  platformId: string
  organizationId: string
  workspaceId: string
  /** Extra labels, e.g. { 'miosa.sandbox_id': 'sbx_…' }. */
  labels: Record<string, string>
  network: string
  cmd?: string[] | undefined
  env: Record<string, string>
  /** Host path of the trusted CA bundle, mounted read-only. */
  caBundle: string | undefined
  /** Additional read-only mounts: host path → container path. */
  readOnlyMounts?: Record<string, string> | undefined
  cpu: number
  memoryMb: number
  pidsLimit: number
  workingDir?: string | undefined
  user?: string | undefined
  /** tmpfs mounts: container path → mount options (e.g. 'size=512m'). */
  tmpfs?: Record<string, string> | undefined
  /** Host path mounted read-write at /workspace (the sandbox's workspace volume). */
  workspace?: string | undefined
}

export function containerOptions(spec: ContainerSpec): ContainerCreateOptions {
  const env = { ...spec.env }
  if (spec.caBundle !== undefined) for (const name of CA_ENV_VARS) env[name] = CA_BUNDLE_PATH
  const binds = Object.entries(spec.readOnlyMounts ?? {}).map(([host, inside]) => `${host}:${inside}:ro`)
  if (spec.caBundle !== undefined) binds.push(`${spec.caBundle}:${CA_BUNDLE_PATH}:ro`)
  if (spec.workspace !== undefined) binds.push(`${spec.workspace}:/workspace`)
  const memory = spec.memoryMb * 1024 * 1024
  return {
    name: spec.name,
    Image: spec.image,
    ...(spec.cmd === undefined ? {} : { Cmd: spec.cmd }),
    Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    ...(spec.workingDir === undefined ? {} : { WorkingDir: spec.workingDir }),
    ...(spec.user === undefined ? {} : { User: spec.user }),
    Labels: {
      [LABEL.managed]: 'true',
      [LABEL.platform]: spec.platformId,
      [LABEL.kind]: spec.kind,
      [LABEL.organization]: spec.organizationId,
      [LABEL.workspace]: spec.workspaceId,
      ...spec.labels,
    },
    HostConfig: {
      Init: true,
      Binds: binds,
      ...(spec.tmpfs === undefined ? {} : { Tmpfs: spec.tmpfs }),
      NetworkMode: spec.network,
      CapDrop: ['NET_RAW'],
      SecurityOpt: ['no-new-privileges'],
      PidsLimit: spec.pidsLimit,
      Memory: memory,
      MemorySwap: memory,
      NanoCpus: Math.round(spec.cpu * 1e9),
      // The platform's reconciler decides what runs, not Docker.
      RestartPolicy: { Name: 'no' },
      LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '2' } },
    },
  }
}
