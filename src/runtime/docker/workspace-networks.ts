import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import type Dockerode from 'dockerode'
import type { Logger } from 'pino'
import { MiosaError } from '../../core/errors.js'
import { LABEL } from './container-spec.js'

// One bridge network per workspace: Docker already keeps different bridges from
// reaching each other. What Docker allows by default, and we do not, is a container
// opening connections to the host itself (the API port, PostgreSQL, the Docker
// daemon's TCP port if any) through its bridge's gateway address, and to the cloud
// metadata address. iptables rules on the bridge's interface close both; replies to
// connections the host opened (the platform reaching the agent, the edge reaching a
// preview) still pass.
//
// Subnets are carved by us, one /24 each from a configurable /16, rather than taken
// from Docker's default pools: those hold about thirty networks, and a platform with
// more workspaces than that would stop creating sandboxes.
//
// A workspace has up to two such networks, fenced alike: 'sandboxes' (sandboxes and
// builders) and 'apps' (runtime instances of its deployments). Being separate bridges,
// a sandbox cannot reach an instance, while the edge on the host still can.

const INPUT_CHAIN = 'MIOSA-INPUT'
const METADATA_ADDRESS = '169.254.169.254'

export type NetworkPurpose = 'sandboxes' | 'apps'

/**
 * 'swarm': apps networks are swarm-scoped bridges (Swarm services can join only those), each
 * made from a config-only network of the same subnet and bridge name, so the fence and the
 * subnet allocator stay as they are. Named with a `-swarm` suffix: never confused with a
 * local apps network of the same workspace.
 */
export type AppsScope = 'local' | 'swarm'

const CONFIG_SUFFIX = '-config'

export class WorkspaceNetworks {
  private readonly ensuring = new Map<string, Promise<string>>()
  /** Networks some work of this process is about to attach a container to: prune leaves them. */
  private readonly held = new Map<string, number>()
  private chainReady: Promise<void> | undefined
  private creating: Promise<void> = Promise.resolve()

  constructor(
    private readonly docker: Dockerode,
    private readonly platformId: () => string,
    /** An IPv4 /16 such as 10.213.0.0/16. */
    private readonly subnets: string,
    private readonly logger: Logger,
    private readonly appsScope: AppsScope = 'local',
  ) {}

  /** The workspace's network name, created (and fenced off from the host) on first use. */
  ensure(workspaceId: string, purpose: NetworkPurpose = 'sandboxes'): Promise<string> {
    const key = this.key(workspaceId, purpose)
    let pending = this.ensuring.get(key)
    if (pending === undefined) {
      pending = this.create(workspaceId, purpose)
      this.ensuring.set(key, pending)
      pending.catch(() => this.ensuring.delete(key))
    }
    return pending
  }

  /** Runs `use` with the workspace's network, which prune does not remove meanwhile. */
  async hold<T>(workspaceId: string, purpose: NetworkPurpose, use: (network: string) => Promise<T>): Promise<T> {
    const key = this.key(workspaceId, purpose)
    this.held.set(key, (this.held.get(key) ?? 0) + 1)
    try {
      return await use(await this.ensure(workspaceId, purpose))
    } finally {
      const count = (this.held.get(key) ?? 1) - 1
      if (count === 0) this.held.delete(key)
      else this.held.set(key, count)
    }
  }

  /** Forgets that the network exists (another process removed it): the next ensure creates it again. */
  forget(workspaceId: string, purpose: NetworkPurpose): void {
    this.ensuring.delete(this.key(workspaceId, purpose))
  }

  networkName(workspaceId: string, purpose: NetworkPurpose = 'sandboxes'): string {
    const name = `miosa-${this.platformId().slice(-8)}-${workspaceId}`
    if (purpose === 'sandboxes') return name
    return this.appsScope === 'swarm' ? `${name}-${purpose}-swarm` : `${name}-${purpose}`
  }

  /**
   * Removes this platform's networks of workspaces not in `keep` that have no container
   * attached (Docker refuses to remove one that has). An apps network also stays while
   * any instance container of its workspace exists, running or not. Returns how many went.
   */
  async prune(keep: ReadonlySet<string>): Promise<number> {
    const networks = await this.docker.listNetworks({ filters: { label: [`${LABEL.platform}=${this.platformId()}`] } })
    let removed = 0
    for (const network of networks) {
      const workspaceId = network.Labels?.[LABEL.workspace]
      if (workspaceId === undefined || keep.has(workspaceId)) continue
      // Networks made before there were apps networks carry no purpose: sandboxes'.
      const purpose: NetworkPurpose = network.Labels?.[LABEL.networkPurpose] === 'apps' ? 'apps' : 'sandboxes'
      if (this.held.has(this.key(workspaceId, purpose))) continue
      if (purpose === 'apps' && (await this.hasInstances(workspaceId))) continue
      // A swarm network carries no labels (Docker refuses them beside a config network): found through its labelled config, and removed first.
      const swarmNetwork = network.Name.endsWith(`-swarm${CONFIG_SUFFIX}`) ? network.Name.slice(0, -CONFIG_SUFFIX.length) : undefined
      try {
        if (swarmNetwork !== undefined) await this.removeIfThere(swarmNetwork)
        await this.docker.getNetwork(network.Id).remove()
      } catch {
        continue // still has containers (a warm pool, a sandbox being created) or services: next time
      }
      this.ensuring.delete(this.key(workspaceId, purpose))
      await this.unfence(bridgeName(swarmNetwork ?? network.Name))
      removed++
    }
    return removed
  }

  private async removeIfThere(name: string): Promise<void> {
    try {
      await this.docker.getNetwork(name).remove()
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode !== 404) throw error
    }
  }

  private key(workspaceId: string, purpose: NetworkPurpose): string {
    return `${purpose}:${workspaceId}`
  }

  /** Docker lets a network go while its containers are stopped; an exited instance is still core's to inspect. */
  private async hasInstances(workspaceId: string): Promise<boolean> {
    const containers = await this.docker.listContainers({
      all: true,
      filters: { label: [`${LABEL.platform}=${this.platformId()}`, `${LABEL.kind}=instance`, `${LABEL.workspace}=${workspaceId}`] },
    })
    return containers.length > 0
  }

  private async create(workspaceId: string, purpose: NetworkPurpose): Promise<string> {
    const name = this.networkName(workspaceId, purpose)
    const bridge = bridgeName(name)
    const existing = await this.docker.listNetworks({ filters: { name: [name] } })
    if (!existing.some((n) => n.Name === name)) {
      if (purpose === 'apps' && this.appsScope === 'swarm') await this.createSwarmScoped(name, bridge, workspaceId, existing)
      else await this.createWithFreeSubnet(name, bridge, workspaceId, purpose)
    }
    await this.fenceOffHost(bridge)
    return name
  }

  /** The config-only network (subnet, bridge name; kept if a half-done prune left it), then the swarm-scoped one made from it. */
  private async createSwarmScoped(name: string, bridge: string, workspaceId: string, existing: Dockerode.NetworkInspectInfo[]): Promise<void> {
    const config = `${name}${CONFIG_SUFFIX}`
    if (!existing.some((n) => n.Name === config)) await this.createWithFreeSubnet(config, bridge, workspaceId, 'apps', { ConfigOnly: true })
    try {
      await this.docker.createNetwork({
        Name: name,
        Driver: 'bridge',
        Scope: 'swarm',
        ConfigFrom: { Network: config },
        CheckDuplicate: true,
      } as Dockerode.NetworkCreateOptions)
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode !== 409) throw error
    }
  }

  private async createWithFreeSubnet(name: string, bridge: string, workspaceId: string, purpose: NetworkPurpose, extra: { ConfigOnly?: boolean } = {}): Promise<void> {
    // One at a time in this process: Docker reserves a pool before the network shows in
    // its list, so two creates at once would keep picking the same "free" /24.
    const previous = this.creating
    let release = () => {}
    this.creating = new Promise<void>((resolve) => (release = resolve))
    await previous
    try {
      const tried = new Set<string>()
      for (let attempt = 0; attempt < 16; attempt++) {
        // The apps network starts its search elsewhere than the sandboxes one.
        const subnet = await this.freeSubnet(purpose === 'sandboxes' ? workspaceId : `${workspaceId}/${purpose}`, tried)
        tried.add(subnet)
        try {
          await this.docker.createNetwork({
            Name: name,
            Driver: 'bridge',
            ...extra,
            CheckDuplicate: true,
            IPAM: { Driver: 'default', Config: [{ Subnet: subnet }] },
            Labels: {
              [LABEL.managed]: 'true',
              [LABEL.platform]: this.platformId(),
              [LABEL.workspace]: workspaceId,
              [LABEL.networkPurpose]: purpose,
            },
            Options: { 'com.docker.network.bridge.name': bridge, 'com.docker.network.bridge.enable_icc': 'true' },
          })
          return
        } catch (error) {
          const status = (error as { statusCode?: number }).statusCode
          // Another process created it between our look and our create: that is what we wanted.
          if (status === 409) return
          // Another process (a second platform on this daemon) is taking that subnet: pick another.
          if (/overlap/i.test(String((error as Error).message))) continue
          throw error
        }
      }
      throw new MiosaError('unavailable', `no free subnet left in ${this.subnets} for a new workspace network`)
    } finally {
      release()
    }
  }

  /**
   * A /24 of the range that no Docker network uses and we have not tried yet. The search
   * starts at a place chosen by `seed` (the workspace id), so processes sharing a daemon rarely
   * reach for the same one.
   */
  private async freeSubnet(seed: string, tried: ReadonlySet<string>): Promise<string> {
    const [a, b] = this.subnets.split('.')
    const used = new Set<string>()
    for (const network of await this.docker.listNetworks()) {
      for (const config of network.IPAM?.Config ?? []) if (config.Subnet !== undefined) used.add(config.Subnet)
    }
    const start = createHash('sha256').update(seed).digest()[0] as number
    for (let i = 0; i < 256; i++) {
      const subnet = `${a}.${b}.${(start + i) % 256}.0/24`
      if (!used.has(subnet) && !tried.has(subnet)) return subnet
    }
    throw new MiosaError('unavailable', `no free subnet left in ${this.subnets} for a new workspace network`)
  }

  private fenceRules(bridge: string): string[][] {
    return [
      [INPUT_CHAIN, '-i', bridge, '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT'],
      [INPUT_CHAIN, '-i', bridge, '-j', 'DROP'],
    ]
  }

  private async fenceOffHost(bridge: string): Promise<void> {
    this.chainReady ??= (async () => {
      if (!(await iptables(['-n', '-L', INPUT_CHAIN]))) await iptablesOrThrow(['-N', INPUT_CHAIN])
      if (!(await iptables(['-C', 'INPUT', '-j', INPUT_CHAIN]))) await iptablesOrThrow(['-I', 'INPUT', '1', '-j', INPUT_CHAIN])
    })()
    await this.chainReady
    for (const rule of this.fenceRules(bridge)) {
      if (!(await iptables(['-C', ...rule]))) await iptablesOrThrow(['-A', ...rule])
    }
    const metadata = ['DOCKER-USER', '-i', bridge, '-d', METADATA_ADDRESS, '-j', 'DROP']
    if (!(await iptables(['-C', ...metadata])) && !(await iptables(['-I', ...metadata]))) {
      this.logger.warn({ bridge }, 'could not block the metadata address for a workspace network (no DOCKER-USER chain)')
    }
  }

  private async unfence(bridge: string): Promise<void> {
    for (const rule of [...this.fenceRules(bridge), ['DOCKER-USER', '-i', bridge, '-d', METADATA_ADDRESS, '-j', 'DROP']]) {
      while (await iptables(['-D', ...rule])) {
        // a rule added twice (two processes racing) is deleted twice
      }
    }
  }
}

/** The host interface of a workspace network's bridge (Linux interface names are at most 15 characters). */
export function bridgeName(networkName: string): string {
  return `mb-${createHash('sha256').update(networkName).digest('hex').slice(0, 12)}`
}

/** Runs iptables (waiting for the xtables lock); true when it exits 0. */
function iptables(args: string[]): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn('iptables', ['-w', '5', ...args], { stdio: 'ignore' })
    child.on('error', () => resolve(false))
    child.on('exit', (code) => resolve(code === 0))
  })
}

async function iptablesOrThrow(args: string[]): Promise<void> {
  if (!(await iptables(args))) {
    throw new MiosaError('internal', `iptables ${args.join(' ')} failed: sandbox isolation needs root and iptables`)
  }
}
