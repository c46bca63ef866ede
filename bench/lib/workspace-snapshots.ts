import Docker from 'dockerode'
import { newId, randomBase32 } from '../../src/core/ids.js'
import type { DockerDriver } from '../../src/runtime/docker/docker-driver.js'
import type { RuntimeRef } from '../../src/runtime/runtime-driver.js'
import { removePlatformResources } from '../../test/helpers/docker-cleanup.js'
import { testDockerDriver } from '../../test/helpers/docker-driver.js'

// Snapshot and fork → first exec of a sandbox whose /workspace had 0, 338 MB (~9,000
// files, the size of a Next.js node_modules) and 1 GB written inside it: with workspace
// volumes (btrfs snapshots) and with the `docker commit` path (/workspace in the
// container's writable layer), through the driver, in the same run. The big sizes run
// only a couple of times (the commit path copies a gigabyte each time; the machine is
// shared). Then resume of a stopped sandbox and the memory of an idle one.

interface Stats {
  name: string
  n: number
  median: number
  p95: number
  p99: number
}
type Report = (ours: Stats, ...peers: Stats[]) => void
type MakeStats = (name: string, samples: number[]) => Stats

const FILES = 9000
const SIZES = [
  { label: '0 MB', bytes: 0, runs: { volumes: 5, commit: 3 } },
  { label: '338 MB', bytes: 338 * 1000 ** 2, runs: { volumes: 3, commit: 2 } },
  { label: '1 GB', bytes: 1024 ** 3, runs: { volumes: 2, commit: 1 } },
]
const ORG = newId('organization')
const WORKSPACE = newId('workspace')

/** FILES files of one size under /workspace/gen, each different (so nothing could be shared by content). */
const GENERATE = [
  "const fs=require('fs'),c=require('crypto');const [n,size]=[+process.argv[1],+process.argv[2]];const buf=c.randomBytes(size)",
  "for(let i=0;i<n;i++){const d='/workspace/gen/'+(i%100);if(i<100)fs.mkdirSync(d,{recursive:true});buf.writeUInt32LE(i,0);fs.writeFileSync(d+'/f'+i+'.bin',buf)}",
].join(';')

async function timed<T>(work: () => Promise<T>): Promise<[number, T]> {
  const start = process.hrtime.bigint()
  const value = await work()
  return [Number(process.hrtime.bigint() - start) / 1e6, value]
}

async function run(driver: DockerDriver, ref: RuntimeRef, argv: string[]): Promise<string> {
  const result = await driver.exec(ref, { argv, timeoutMs: 600_000 })
  if (result.exit_code !== 0) throw new Error(`${argv.join(' ')} failed: ${result.stderr}`)
  return result.stdout
}

function sandbox(): Parameters<DockerDriver['createSandbox']>[0] {
  return { sandboxId: newId('sandbox'), organizationId: ORG, workspaceId: WORKSPACE, template: 'node', cpu: 1, memoryMb: 1024, pidsLimit: 512 }
}

/** Snapshot, then fork → first exec (a snapshot, a sandbox from it, `true` in it), `runs` times. */
async function measure(driver: DockerDriver, bytes: number, runs: number): Promise<{ snapshot: number[]; fork: number[] }> {
  const source = await driver.createSandbox(sandbox())
  if (bytes > 0) await run(driver, source, ['node', '-e', GENERATE, String(FILES), String(Math.floor(bytes / FILES))])
  await run(driver, source, ['sync'])
  const snapshot: number[] = []
  const fork: number[] = []
  for (let i = 0; i < runs; i++) {
    await run(driver, source, ['sh', '-c', `echo ${i} >> /workspace/changes.txt`])
    const [ms, snap] = await timed(() => driver.snapshot(source, newId('snapshot')))
    snapshot.push(ms)
    const [forkMs, made] = await timed(async () => {
      const base = await driver.snapshot(source, `fork-${newId('sandbox')}`)
      const ref = await driver.createSandbox({ ...sandbox(), fromSnapshot: base.id })
      await driver.exec(ref, { argv: ['true'] })
      return { ref, base }
    })
    fork.push(forkMs)
    await driver.destroy(made.ref)
    await driver.deleteSnapshot(made.base)
    await driver.deleteSnapshot(snap)
  }
  await driver.destroy(source)
  return { snapshot, fork }
}

export async function workspaceSnapshots(report: Report, stats: MakeStats): Promise<void> {
  const docker = new Docker()
  const platformId = `plt_${randomBase32(20)}`
  const volumes = testDockerDriver(platformId)
  const commit = testDockerDriver(platformId, docker, { workspacesDir: false })
  try {
    await volumes.prepareTemplate('node')
    console.log(`\nworkspace snapshots (${FILES} files per size; runs per size, volumes/commit: ${SIZES.map((s) => `${s.label} ${s.runs.volumes}/${s.runs.commit}`).join(', ')})`)
    for (const size of SIZES) {
      const ours = await measure(volumes, size.bytes, size.runs.volumes)
      const theirs = await measure(commit, size.bytes, size.runs.commit)
      report(stats(`snapshot, ${size.label} written`, ours.snapshot), stats('docker commit', theirs.snapshot))
      report(stats(`fork → first exec, ${size.label} written`, ours.fork), stats('docker commit', theirs.fork))
    }

    // Resume of a stopped sandbox (container start, agent ready), then its first exec.
    const ref = await volumes.createSandbox(sandbox())
    const resume: number[] = []
    const resumeExec: number[] = []
    for (let i = 0; i < 5; i++) {
      await volumes.stop(ref)
      const [ms] = await timed(() => volumes.resume(ref))
      resume.push(ms)
      resumeExec.push(ms + (await timed(() => volumes.exec(ref, { argv: ['true'] })))[0])
    }
    report(stats('resume of a stopped sandbox', resume))
    report(stats('resume + first exec', resumeExec))
    // Memory of a running sandbox with nothing running in it but its agent (cgroup v1: usage less page cache).
    await new Promise((resolve) => setTimeout(resolve, 3000))
    const s = (await docker.getContainer(ref.id).stats({ stream: false })) as unknown as { memory_stats: { usage: number; stats?: { cache?: number; inactive_file?: number } } }
    const bytes = s.memory_stats.usage - (s.memory_stats.stats?.cache ?? s.memory_stats.stats?.inactive_file ?? 0)
    console.log(`memory of an idle running sandbox: ${(bytes / 1024 ** 2).toFixed(1)} MiB (a stopped one: none; its container and volume stay on disk)`)
    await volumes.destroy(ref)
  } finally {
    await volumes.close()
    await commit.close()
    await removePlatformResources(platformId, volumes)
  }
}
