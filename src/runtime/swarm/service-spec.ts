import type Dockerode from 'dockerode'
import { CA_BUNDLE_PATH, CA_ENV_VARS, LABEL } from '../docker/container-spec.js'

// The Swarm service of one runtime instance (or one-off run): what the Docker driver's
// containerOptions gives a container, said in Swarm's terms. One replica that Swarm never
// restarts (core's reconciler replaces exited instances and reports their exit codes),
// placed by Swarm, on the workspace's swarm-scoped apps network.

export interface ServiceSpecInput {
  name: string
  image: string
  platformId: string
  organizationId: string
  workspaceId: string
  /** Extra labels (deployment, version, instance …), on the service and on its task's container. */
  labels: Record<string, string>
  network: string
  cmd?: string[] | undefined
  env: Record<string, string>
  caBundle: string | undefined
  cpu: number
  memoryMb: number
  pidsLimit: number
}

export function serviceSpec(input: ServiceSpecInput): Dockerode.CreateServiceOptions {
  const env = { ...input.env }
  if (input.caBundle !== undefined) for (const name of CA_ENV_VARS) env[name] = CA_BUNDLE_PATH
  // The same labels as a plain Docker instance's container, so both the service (list, re-adoption)
  // and its task's container (network pruning, test cleanup) say whose they are.
  const labels = {
    [LABEL.managed]: 'true',
    [LABEL.platform]: input.platformId,
    [LABEL.kind]: 'instance',
    [LABEL.organization]: input.organizationId,
    [LABEL.workspace]: input.workspaceId,
    ...input.labels,
  }
  const containerSpec = {
    Image: input.image,
    // Args is the image's CMD (its ENTRYPOINT stays), as Cmd is for a container.
    ...(input.cmd === undefined ? {} : { Args: input.cmd }),
    Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    Labels: labels,
    Init: true,
    CapabilityDrop: ['CAP_NET_RAW'],
    // Engines from API 1.46 apply it; older ones ignore the field (see the README's Swarm section).
    Privileges: { NoNewPrivileges: true },
    Mounts: input.caBundle === undefined ? [] : [{ Type: 'bind', Source: input.caBundle, Target: CA_BUNDLE_PATH, ReadOnly: true }],
    // stop() stops the task's container itself with the grace it is given; this is for Swarm's own stops.
    StopGracePeriod: 10e9,
  }
  return {
    Name: input.name,
    Labels: labels,
    TaskTemplate: {
      ContainerSpec: containerSpec as Dockerode.ContainerSpec,
      Resources: {
        Limits: { NanoCPUs: Math.round(input.cpu * 1e9), MemoryBytes: input.memoryMb * 1024 * 1024, Pids: input.pidsLimit },
      },
      // Core's reconciler decides what runs: an exited task stays exited, with its exit code.
      RestartPolicy: { Condition: 'none' },
      Networks: [{ Target: input.network }],
      LogDriver: { Name: 'json-file', Options: { 'max-size': '10m', 'max-file': '2' } },
    },
    Mode: { Replicated: { Replicas: 1 } },
  }
}
