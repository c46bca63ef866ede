import type { OrgScope } from '../store/store.js'

// What a deployment environment injects: its env vars and secrets, decrypted only on the way
// into a build, a runtime instance or a sandbox, never into a response or a log. The seam
// between where values are kept (env-vars.ts) and where they go (publish, instances, sandboxes).

/** When a value is needed: while building (passed to the builder) or while running (instances, sandboxes). */
export type EnvPhase = 'build' | 'runtime'

export interface ResolvedEnv {
  /** KEY → value, decrypted. */
  env: Record<string, string>
  /** The values among them that are secrets: masked wherever output is shown (build logs). */
  secrets: string[]
}

export interface EnvironmentValues {
  /** The values of the deployment's environment needed in `phase` (values marked `both` are in each). */
  resolve(scope: OrgScope, deploymentId: string, environment: string, phase: EnvPhase): Promise<ResolvedEnv>
}
