import { randomBase32 } from '../../src/core/ids.js'
import { removePlatformResources } from '../helpers/docker-cleanup.js'
import { testDockerDriver } from '../helpers/docker-driver.js'
import { runtimeDriverContract } from './runtime-driver.case.js'

// The Docker driver against the real Docker Engine scripts/test starts.
runtimeDriverContract('docker', async () => {
  const platformId = `plt_${randomBase32(20)}`
  const driver = testDockerDriver(platformId)
  return {
    driver,
    async cleanup() {
      await driver.close()
      await removePlatformResources(platformId, driver)
    },
  }
})
