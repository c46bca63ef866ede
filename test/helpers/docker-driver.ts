import Docker from 'dockerode'
import pino from 'pino'
import { loadConfig } from '../../src/config.js'
import { DockerDriver } from '../../src/runtime/docker/docker-driver.js'
import type { DockerDriverOptions } from '../../src/runtime/docker/docker-driver.js'

// A Docker driver as tests use one directly: this machine's cache, CA bundle and subnets,
// no warm pool, quiet logs. Its containers carry `platformId`, so removePlatformResources
// (./docker-cleanup.ts) can take them away again.

export function testDockerDriver(platformId: string, docker: Docker = new Docker(), extra: Partial<DockerDriverOptions> = {}): DockerDriver {
  const config = loadConfig({}, { MIOSA_CACHE_DIR: process.env.MIOSA_CACHE_DIR })
  return new DockerDriver({
    docker,
    platformId: () => platformId,
    cacheDir: config.cacheDir,
    caBundle: config.caBundle,
    subnets: config.sandboxSubnets,
    warmPool: { size: 0, cpu: 1, memoryMb: 512, pidsLimit: 512 },
    logger: pino({ level: 'silent' }),
    ...extra,
  })
}
