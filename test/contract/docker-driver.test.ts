import { tmpdir } from 'node:os'
import Docker from 'dockerode'
import pino from 'pino'
import { loadConfig } from '../../src/config.js'
import { randomBase32 } from '../../src/core/ids.js'
import { DockerDriver } from '../../src/runtime/docker/docker-driver.js'
import { removePlatformResources } from '../helpers/docker-cleanup.js'
import { runtimeDriverContract } from './runtime-driver.case.js'

// The Docker driver against the real Docker Engine scripts/test starts.
runtimeDriverContract('docker', async () => {
  const platformId = `plt_${randomBase32(20)}`
  const config = loadConfig({ dataDir: tmpdir() }, { MIOSA_CACHE_DIR: process.env.MIOSA_CACHE_DIR })
  const driver = new DockerDriver({
    docker: new Docker(),
    platformId: () => platformId,
    cacheDir: config.cacheDir,
    caBundle: config.caBundle,
    subnets: config.sandboxSubnets,
    warmPool: { size: 0, cpu: 1, memoryMb: 512, pidsLimit: 512 },
    logger: pino({ level: 'silent' }),
  })
  return {
    driver,
    async cleanup() {
      await driver.close()
      await removePlatformResources(platformId, driver)
    },
  }
})
