import { loadConfig } from './config.js'
import type { Config, ServerFlags } from './config.js'
import type { Logger } from 'pino'
import { createEdgeProcess, createPlatform } from './platform.js'
import { prebuildTemplates } from './prebuild-templates.js'

/**
 * `miosa server`: starts the platform, says where it is, and stops gracefully on
 * SIGTERM/SIGINT. The banner goes to stderr (stdout carries the JSON logs); with
 * --json it is one JSON line on stdout instead.
 */
export async function serve(flags: ServerFlags, opts: { json: boolean; prebuildTemplates?: boolean }): Promise<void> {
  const config = loadConfig(flags)
  if (config.role === 'edge') return serveEdge(config, opts)
  const platform = createPlatform(config)
  // Before listening: nothing is served until every template image is there.
  if (opts.prebuildTemplates === true) await prebuildTemplates(platform.services.templates, (line) => process.stderr.write(`${line}\n`))
  const started = await platform.start()

  if (opts.json) {
    process.stdout.write(
      `${JSON.stringify({
        api_url: `${started.apiUrl}/api/v1`,
        edge_url: started.edgeUrl,
        data_dir: config.dataDir,
        store: platform.store.dialect,
        root_key_file: started.rootKeyFile ?? null,
        ...(started.generatedRootKey === undefined ? {} : { root_key: started.generatedRootKey }),
      })}\n`,
    )
  } else {
    const lines = [
      '',
      'miosa is running',
      `  API        ${started.apiUrl}/api/v1   (OpenAPI: ${started.apiUrl}/api/v1/openapi.json)`,
      `  Edge       ${started.edgeUrl}   (previews: http://<port>-<sandbox>.sandbox.${config.baseDomain}:${new URL(started.edgeUrl).port})`,
      `  Data       ${config.dataDir}`,
      `  Store      ${platform.store.dialect === 'postgres' ? 'PostgreSQL (MIOSA_DATABASE_URL)' : `SQLite in ${config.dataDir}`}`,
    ]
    if (started.generatedRootKey !== undefined) {
      lines.push(
        `  Root key   ${started.generatedRootKey}`,
        `             shown once; also saved to ${started.rootKeyFile} (mode 0600)`,
      )
    } else if (started.rootKeyFile !== undefined) {
      lines.push(`  Root key   in ${started.rootKeyFile}`)
    } else {
      lines.push('  Root key   from MIOSA_ROOT_KEY')
    }
    lines.push('', `  Next: miosa login --url ${started.apiUrl} < ${started.rootKeyFile ?? '<your root key file>'}`, '')
    process.stderr.write(`${lines.join('\n')}\n`)
  }

  await untilSignalled(platform)
}

/** `--role edge`: one more edge on the platform's PostgreSQL. */
async function serveEdge(config: Config, opts: { json: boolean }): Promise<void> {
  const edge = createEdgeProcess(config)
  const { edgeUrl } = await edge.start()
  if (opts.json) process.stdout.write(`${JSON.stringify({ role: 'edge', edge_url: edgeUrl, store: edge.store.dialect })}\n`)
  else process.stderr.write(`\nmiosa edge is running\n  Edge       ${edgeUrl}\n  Store      PostgreSQL (MIOSA_DATABASE_URL)\n\n`)
  await untilSignalled(edge)
}

/** Resolves once SIGTERM or SIGINT stopped the process's parts gracefully. */
function untilSignalled(running: { logger: Logger; stop(): Promise<void> }): Promise<void> {
  return new Promise<void>((resolve) => {
    const shutdown = (signal: string) => {
      running.logger.info({ signal }, 'signal received')
      running.stop().then(resolve, (error: unknown) => {
        running.logger.error({ err: error }, 'shutdown failed')
        process.exitCode = 1
        resolve()
      })
    }
    process.once('SIGTERM', () => shutdown('SIGTERM'))
    process.once('SIGINT', () => shutdown('SIGINT'))
  })
}
