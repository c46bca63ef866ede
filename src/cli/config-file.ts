import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'

// Where `miosa login` keeps the API URL and key: a 0600 file in the user's config dir.
// Flags and MIOSA_API_URL / MIOSA_API_KEY override it.

export interface CliConfig {
  api_url?: string
  api_key?: string
}

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.MIOSA_CONFIG) return env.MIOSA_CONFIG
  const base = env.XDG_CONFIG_HOME || join(homedir(), '.config')
  return join(base, 'miosa', 'config.json')
}

export async function readCliConfig(): Promise<CliConfig> {
  try {
    return JSON.parse(await readFile(configPath(), 'utf8')) as CliConfig
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {}
    throw new Error(`cannot read ${configPath()}: ${(error as Error).message}`, { cause: error })
  }
}

export async function writeCliConfig(config: CliConfig): Promise<string> {
  const path = configPath()
  await mkdir(dirname(path), { recursive: true, mode: 0o700 })
  await writeFile(path, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 })
  await chmod(path, 0o600) // the mode above applies only when the file is new
  return path
}

export async function removeCliConfig(): Promise<string> {
  const path = configPath()
  await rm(path, { force: true })
  return path
}
