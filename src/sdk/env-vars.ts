import type {
  EnvPhaseInput,
  EnvVarDeleted,
  EnvVarList,
  EnvVarsSetResult,
  RotateMasterKeyInput,
  RotateMasterKeyResult,
  SetEnvVarInput,
  SetEnvVarsInput,
} from '../schemas/env-vars.js'
import type { Transport } from './transport.js'

// Env vars and secrets of deployment environments. Values go in; lists answer previews
// (`abcd…`, `••••` for secrets), raw plain values only with `reveal`. Every change takes
// effect on the next boot: `deployments.restart(id, { environment })` applies it.

export interface EnvListParams {
  /** One environment; default every environment of the deployment. */
  environment?: string
  /** Also the raw values of vars that are not secrets (organization keys only). */
  reveal?: boolean
}

const enc = encodeURIComponent

export class EnvVars {
  constructor(
    private readonly transport: Transport,
    private readonly api: string,
  ) {}

  /** Sets one var (replacing its value). */
  set(deploymentId: string, input: SetEnvVarInput): Promise<EnvVarsSetResult> {
    return this.transport.request('POST', `${this.api}/deployments/${enc(deploymentId)}/env`, { body: input })
  }

  /** Sets several vars of one environment: all of them or, on any error, none. */
  setMany(deploymentId: string, input: SetEnvVarsInput): Promise<EnvVarsSetResult> {
    return this.transport.request('POST', `${this.api}/deployments/${enc(deploymentId)}/env/bulk`, { body: input })
  }

  list(deploymentId: string, params: EnvListParams = {}): Promise<EnvVarList> {
    return this.transport.request('GET', `${this.api}/deployments/${enc(deploymentId)}/env`, { query: { ...params } })
  }

  /** Removes a var from an environment (default production). */
  unset(deploymentId: string, key: string, params: { environment?: string } = {}): Promise<EnvVarDeleted> {
    return this.transport.request('DELETE', `${this.api}/deployments/${enc(deploymentId)}/env/${enc(key)}`, { query: { ...params } })
  }
}

/** Platform administration (root key only). */
export class Admin {
  constructor(
    private readonly transport: Transport,
    private readonly api: string,
  ) {}

  /**
   * Re-encrypts every env value under a new master key (given, or made by the server), then drops the old key.
   * The server takes it only with `confirm: "rotate-master-key"`.
   */
  rotateMasterKey(input: RotateMasterKeyInput): Promise<RotateMasterKeyResult> {
    return this.transport.request('POST', `${this.api}/admin/rotate-master-key`, { body: input, timeoutMs: 30 * 60_000 })
  }
}

export type { EnvPhaseInput }
