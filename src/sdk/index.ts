// miosa/sdk: the browser-safe client. It imports no server code: only types from the
// wire schemas and the shared error class.
export { MiosaClient, Organizations, ApiKeys } from './client.js'
export type { ProjectListParams } from './client.js'
export { Resource, CrudResource } from './resource.js'
export { Sandboxes, Snapshots } from './sandboxes.js'
export type { SandboxListParams, ExecExit, ExecStreamOptions, WaitOptions, TransferOptions, SocketTarget } from './sandboxes.js'
export { Templates } from './templates.js'
export { Limits } from './limits.js'
export type { LimitsReport, LimitsPatch, QuotaResource } from '../schemas/quotas.js'
export { Deployments, Versions } from './deployments.js'
export { Environments } from './environments.js'
export type { Environment, CreateEnvironmentInput, DeletedEnvironment } from '../schemas/environments.js'
export { EnvVars, Admin } from './env-vars.js'
export type { EnvListParams } from './env-vars.js'
export type { DeploymentListParams, VersionListParams, PublishOptions, UploadPublishParams, RouteChangeResult } from './deployments.js'
export { PreviewTokens, ShareTokens } from './previews.js'
export type { TokenListParams } from './previews.js'
export { Tenant, TenantBrandingApi, TenantPreviewDomainApi } from './tenant.js'
export type { WorkspaceParam } from './tenant.js'
export type { TemplateProgress } from './templates.js'
export { readServerSentEvents, readNdjson, decodeBase64 } from './streams.js'
export type { ServerSentEvent } from './streams.js'
export type { ListParams } from './resource.js'
export { MiosaApiError } from './transport.js'
export type { ClientOptions, BinaryBody } from './transport.js'
export { MiosaError, ERROR_CODES } from '../core/errors.js'
export type { ErrorCode } from '../core/errors.js'
export type { Page } from '../schemas/common.js'
export type { BackgroundService, StartServiceInput } from '../schemas/sandbox-services.js'
export type { Organization, CreateOrganizationInput } from '../schemas/organizations.js'
export type { ApiKey, CreatedApiKey, CreateApiKeyInput } from '../schemas/api-keys.js'
export type { Workspace, CreateWorkspaceInput, UpdateWorkspaceInput } from '../schemas/workspaces.js'
export type { Project, CreateProjectInput, UpdateProjectInput } from '../schemas/projects.js'
export type { Whoami } from '../schemas/system.js'
export type {
  Sandbox,
  SandboxState,
  CreateSandboxInput,
  UpdateSandboxInput,
  PreviewUrl,
  ForkSandboxInput,
  ExecInput,
  ExecResultOutput as ExecResult,
  FileStatOutput as FileStat,
  Snapshot,
  CreateSnapshotInput,
  Template,
  TemplateBuildEvent,
} from '../schemas/sandboxes.js'
export type {
  PreviewToken,
  CreatedPreviewToken,
  CreatePreviewTokenInput,
  ShareToken,
  CreatedShareToken,
  CreateShareTokenInput,
} from '../schemas/previews.js'
export type {
  TenantBranding,
  SetBrandingInput,
  TenantPreviewDomain,
  SetPreviewDomainInput,
} from '../schemas/tenant.js'
export type {
  EnvVar,
  EnvVarList,
  EnvVarsSetResult,
  EnvVarDeleted,
  EnvPhaseInput,
  SetEnvVarInput,
  SetEnvVarsInput,
  RotateMasterKeyInput,
  RotateMasterKeyResult,
} from '../schemas/env-vars.js'
export type {
  Deployment,
  DeploymentRoute,
  Version,
  VersionStatus,
  RouteChange,
  PlanResult,
  CreateDeploymentInput,
  PublishInput,
  PublishByNameInput,
  PlanInput,
  RollbackInput,
  PromoteInput,
  Instance,
  InstanceEvent,
  InstancesResult,
  RuntimeLogEvent,
  UpdateDeploymentInput,
} from '../schemas/deployments.js'
