#!/usr/bin/env node
import { Command, CommanderError } from 'commander'
import { MiosaError } from '../core/errors.js'
import { VERSION } from '../version.js'
import { commandExitCode } from './command.js'
import { registerApiKeys } from './commands/api-keys/index.js'
import { registerLogin } from './commands/auth/login.js'
import { registerLogout } from './commands/auth/logout.js'
import { registerWhoami } from './commands/auth/whoami.js'
import { registerOrganizations } from './commands/organizations/index.js'
import { registerPreview } from './commands/preview/index.js'
import { registerPreviewToken } from './commands/preview-token/index.js'
import { registerProjects } from './commands/projects/index.js'
import { registerSandbox } from './commands/sandbox/index.js'
import { registerServer } from './commands/server/run.js'
import { registerShare } from './commands/share/index.js'
import { registerTemplates } from './commands/templates/index.js'
import { registerTenant } from './commands/tenant/index.js'
import { registerWorkspaces } from './commands/workspaces/index.js'
import { registerDeploy } from './commands/deploy/run.js'
import { registerDeployments } from './commands/deployments/index.js'
import { registerVersions } from './commands/versions/index.js'
import { registerRollback } from './commands/rollback/run.js'
import { registerPromote } from './commands/promote/run.js'
import { registerLogs } from './commands/logs/run.js'
import { registerInstances } from './commands/instances/index.js'
import { registerScale } from './commands/scale/run.js'
import { registerRestart } from './commands/restart/run.js'
import { registerEnv } from './commands/env/index.js'
import { registerAdmin } from './commands/admin/index.js'
import { registerEnvironments } from './commands/environments/index.js'
import { registerLimits } from './commands/limits/index.js'

// `miosa … | head` closes stdout early: that is the reader's choice, not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0)
  throw error
})

const program = new Command('miosa')
  .description('miosa: sandboxes, previews, publishing, versions, deployments and domains on your own machines')
  .option('--api-url <url>', 'API URL (MIOSA_API_URL; else the one saved by `miosa login`; else http://127.0.0.1:8080)')
  .option('--api-key <key>', 'API key msk_… (MIOSA_API_KEY; else the one saved by `miosa login`)')
  .showHelpAfterError('(run with --help for usage)')
  .addHelpText(
    'after',
    `
Examples:
  miosa server --data-dir /srv/miosa            start the platform (prints the root key once)
  miosa login --url http://127.0.0.1:8080 < /srv/miosa/root-key
  miosa organizations create "Clinic IQ"        then: miosa organizations create-key <org-id>
  MIOSA_API_KEY=msk_… miosa workspaces create "Dr Smith" --external-workspace-id client_7
  miosa projects list --workspace <ws-id> --json
  miosa sandbox create --template nextjs --name my-agent-workspace --timeout 1h --wait --json
  miosa sandbox write-file <sandbox-id> /workspace/app/page.jsx ./page.jsx --json
  miosa sandbox exec <sandbox-id> --json -- sh -lc "cd /workspace && npm install"
  miosa sandbox snapshot <sandbox-id> --name "after dependencies installed" --json
  miosa sandbox fork <sandbox-id> --name my-agent-workspace-auth-branch --json
  miosa sandbox terminal <sandbox-id>            an interactive shell in the sandbox
  miosa preview url <sandbox-id> --port 3000     the preview URL of a port (private unless made public)
  miosa preview-token create <sandbox-id> --ttl 1h    a URL that opens the preview for an hour
  miosa share create <sandbox-id> --password "…"      a revocable link for anyone
  miosa templates build                         build every sandbox image ahead of first use (root key)
  miosa deploy --sandbox <sandbox-id> --name smile-dental     publish, stream the build, print the URL
  miosa rollback smile-dental --to 16           serve version 16 again (nothing is rebuilt)

Every command takes --json: one JSON document on stdout, errors as JSON on stderr, exit 1 on error.`,
  )
  .exitOverride()

registerServer(program)
registerLogin(program)
registerLogout(program)
registerWhoami(program)
registerOrganizations(program)
registerApiKeys(program)
registerWorkspaces(program)
registerProjects(program)
registerSandbox(program)
registerTemplates(program)
registerPreview(program)
registerPreviewToken(program)
registerShare(program)
registerTenant(program)
registerDeploy(program)
registerDeployments(program)
registerVersions(program)
registerRollback(program)
registerPromote(program)
registerLogs(program)
registerInstances(program)
registerScale(program)
registerRestart(program)
registerEnv(program)
registerAdmin(program)
registerEnvironments(program)
registerLimits(program)

// The program's --version only when no command is named: `miosa promote <deployment> --version 18`
// is the command's own option (the program would otherwise take it wherever it appears).
const commandNames = new Set(program.commands.flatMap((c) => [c.name(), ...c.aliases()]))
if (!process.argv.slice(2).some((arg) => commandNames.has(arg))) program.version(VERSION, '-v, --version')

const json = process.argv.includes('--json')

// Every command reports usage errors through the same exit path. With --json, Commander's
// own text is silenced and reportError writes the JSON form instead. (Commander copies
// these settings only when a subcommand is created, hence the walk, to any depth:
// `miosa sandbox snapshots list`.)
const everyCommand = (cmd: Command): Command[] => [cmd, ...cmd.commands.flatMap(everyCommand)]
for (const cmd of everyCommand(program)) {
  cmd.exitOverride()
  if (json) cmd.configureOutput({ writeErr: () => {} }).showHelpAfterError(false)
}

try {
  await program.parseAsync(process.argv)
  process.exitCode = commandExitCode()
} catch (error) {
  process.exitCode = reportError(error, json)
}

/** The one place the CLI turns an error into stderr output and an exit code. */
function reportError(error: unknown, json: boolean): number {
  if (error instanceof CommanderError) {
    // Help and --version exit 0; without --json Commander has already printed usage problems.
    if (error.exitCode === 0) return 0
    if (json) {
      const message = error.message.replace(/^error: /, '')
      process.stderr.write(`${JSON.stringify({ error: { code: 'invalid', message, details: { commander: error.code } } })}\n`)
    }
    return 1
  }
  const known =
    error instanceof MiosaError ? error : new MiosaError('invalid', error instanceof Error ? error.message : String(error))
  process.stderr.write(json ? `${JSON.stringify({ error: known.toJSON() })}\n` : `error: ${known.message}\n`)
  return 1
}
