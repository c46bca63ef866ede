import type Dockerode from 'dockerode'
import type { Logger } from 'pino'
import { MiosaError } from '../../core/errors.js'
import type { EgressPolicy } from '../runtime-driver.js'
import { EgressRules } from './egress-rules.js'
import { bridgeName } from './workspace-networks.js'

// The Docker driver's side of egress policies: finds a sandbox container's address and
// bridge, and has EgressRules put the host's rules in place or take them away.

export class DockerEgress {
  private readonly rules: EgressRules

  constructor(
    private readonly docker: Dockerode,
    private readonly logger: Logger,
  ) {
    this.rules = new EgressRules(logger)
  }

  /** Puts the policy's rules in place for the container's current address (nothing for an open sandbox, or a stopped one). */
  async enforce(containerId: string, policy: EgressPolicy | null | undefined): Promise<void> {
    if (policy === null || policy === undefined) return
    const info = await this.docker.getContainer(containerId).inspect()
    if (!info.State.Running) return
    const [network, settings] = Object.entries(info.NetworkSettings.Networks)[0] ?? []
    if (network === undefined || settings === undefined || settings.IPAddress === '') {
      throw new MiosaError('internal', 'the sandbox container has no address to apply its egress policy to')
    }
    await this.rules.apply({ containerId: info.Id, ip: settings.IPAddress, bridge: bridgeName(network) }, policy)
  }

  /** Removes the container's rules. One left behind would only restrict whichever container gets the address next: sync retries. */
  async release(containerId: string): Promise<void> {
    await this.rules.remove(containerId).catch((error: unknown) => this.logger.warn({ err: error, container: containerId }, 'egress: could not remove rules'))
  }

  /** Re-applies the rules of these running containers and removes those of containers no longer running. */
  async sync(restricted: ReadonlyArray<{ containerId: string; egress: EgressPolicy }>): Promise<void> {
    for (const { containerId, egress } of restricted) {
      await this.enforce(containerId, egress).catch((error: unknown) => this.logger.warn({ err: error, container: containerId }, 'egress: could not apply rules'))
    }
    try {
      const removed = await this.rules.prune(async () => new Set((await this.docker.listContainers()).map((c) => c.Id)))
      if (removed > 0) this.logger.info({ removed }, 'egress: removed rules of containers no longer running')
    } catch (error) {
      // Another process on this host changing rules at the same moment: the next pass tries again.
      this.logger.warn({ err: error }, 'egress: could not remove stale rules')
    }
  }
}
