import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { Parser, create } from 'tar'
import type { ReadEntry } from 'tar'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, dockerArchiveToOci } from '../../src/runtime/docker/oci-archive.js'

// The docker-archive → OCI converter on an archive laid out as Docker 20.10's `docker save`
// writes it (the round trip through a real daemon is in dynamic-build.test.ts).

let dir: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'miosa-oci-test-'))
})

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex')

/** A tar holding one file, as a layer. */
async function layer(name: string, text: string): Promise<Buffer> {
  const root = await mkdtemp(join(dir, 'layer-'))
  await writeFile(join(root, name), text)
  const chunks: Buffer[] = []
  for await (const chunk of create({ cwd: root, portable: true }, [name]) as unknown as AsyncIterable<Buffer>) chunks.push(chunk)
  return Buffer.concat(chunks)
}

async function readArchive(stream: Readable): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>()
  await pipeline(
    stream,
    new Parser({
      onReadEntry: (entry: ReadEntry) => {
        const chunks: Buffer[] = []
        entry.on('data', (c: Buffer) => chunks.push(c))
        entry.on('end', () => files.set(`${entry.path}${entry.type === 'Directory' ? '/' : ''}`, Buffer.concat(chunks)))
      },
    }),
  )
  return files
}

describe('dockerArchiveToOci', () => {
  it('makes an OCI layout whose manifest.json docker load reads, same config bytes, repeated layers once', async () => {
    const a = await layer('a.txt', 'first')
    const b = await layer('b.txt', 'second')
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [`sha256:${sha(a)}`, `sha256:${sha(b)}`, `sha256:${sha(a)}`] } }))
    const saved = await mkdtemp(join(dir, 'save-'))
    for (const [id, data] of [['1111', a], ['2222', b]] as const) {
      await mkdir(join(saved, id))
      await writeFile(join(saved, id, 'layer.tar'), data)
      await writeFile(join(saved, id, 'VERSION'), '1.0')
    }
    // docker save links a layer that repeats to its first copy.
    await mkdir(join(saved, '3333'))
    await symlink('../1111/layer.tar', join(saved, '3333', 'layer.tar'))
    await writeFile(join(saved, `${sha(config)}.json`), config)
    await writeFile(join(saved, 'manifest.json'), JSON.stringify([{ Config: `${sha(config)}.json`, RepoTags: ['x:y'], Layers: ['1111/layer.tar', '2222/layer.tar', '3333/layer.tar'] }]))
    await writeFile(join(saved, 'repositories'), '{}')
    const input = Readable.from(create({ cwd: saved }, await readdir(saved)) as unknown as AsyncIterable<Buffer>)

    const spoolDir = join(dir, 'spool')
    const out = await dockerArchiveToOci(input, { spoolDir, repoTag: `miosa-release:${sha(config)}` })
    expect(out.digest).toBe(sha(config))
    const files = await readArchive(out.stream)
    // The spool is gone once the archive was read.
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(await readdir(spoolDir)).toEqual([])

    const blob = (digest: string) => files.get(`blobs/sha256/${digest.replace(/^sha256:/, '')}`)
    expect(JSON.parse(files.get('oci-layout')?.toString() ?? '')).toEqual({ imageLayoutVersion: '1.0.0' })
    const index = JSON.parse(files.get('index.json')?.toString() ?? '') as { manifests: { digest: string; mediaType: string; annotations: Record<string, string> }[] }
    expect(index.manifests).toHaveLength(1)
    const descriptor = index.manifests[0]
    expect(descriptor?.mediaType).toBe(OCI_MANIFEST)
    expect(descriptor?.annotations['org.opencontainers.image.ref.name']).toBe(sha(config))
    expect(descriptor?.digest).toBe(`sha256:${out.manifestDigest}`)
    const manifestBytes = blob(out.manifestDigest)
    expect(manifestBytes && sha(manifestBytes)).toBe(out.manifestDigest)
    const manifest = JSON.parse(manifestBytes?.toString() ?? '') as { config: { mediaType: string; digest: string; size: number }; layers: { mediaType: string; digest: string; size: number }[] }
    expect(manifest.config).toEqual({ mediaType: OCI_CONFIG, digest: `sha256:${sha(config)}`, size: config.length })
    expect(manifest.layers.map((l) => l.digest)).toEqual([`sha256:${sha(a)}`, `sha256:${sha(b)}`, `sha256:${sha(a)}`])
    expect(manifest.layers.every((l) => l.mediaType === OCI_LAYER)).toBe(true)
    expect(blob(sha(config))?.equals(config)).toBe(true)
    expect(blob(sha(a))?.equals(a)).toBe(true)
    expect(blob(sha(b))?.equals(b)).toBe(true)
    expect([...files.keys()].filter((k) => k.startsWith('blobs/sha256/') && !k.endsWith('/'))).toHaveLength(4)

    const dockerManifest = JSON.parse(files.get('manifest.json')?.toString() ?? '') as unknown
    expect(dockerManifest).toEqual([
      { Config: `blobs/sha256/${sha(config)}`, RepoTags: [`miosa-release:${sha(config)}`], Layers: [`blobs/sha256/${sha(a)}`, `blobs/sha256/${sha(b)}`, `blobs/sha256/${sha(a)}`] },
    ])
  })

  it('refuses an archive whose layers do not match the config', async () => {
    const a = await layer('a.txt', 'x')
    const config = Buffer.from(JSON.stringify({ rootfs: { type: 'layers', diff_ids: ['sha256:0000'] } }))
    const saved = await mkdtemp(join(dir, 'save-'))
    await mkdir(join(saved, 'l1'))
    await writeFile(join(saved, 'l1', 'layer.tar'), a)
    await writeFile(join(saved, 'c.json'), config)
    await writeFile(join(saved, 'manifest.json'), JSON.stringify([{ Config: 'c.json', Layers: ['l1/layer.tar'] }]))
    const input = Readable.from(create({ cwd: saved }, await readdir(saved)) as unknown as AsyncIterable<Buffer>)
    const spoolDir = join(dir, 'spool-bad')
    await expect(dockerArchiveToOci(input, { spoolDir })).rejects.toThrow(/diff_ids/)
    expect(await readdir(spoolDir)).toEqual([])
  })
})
