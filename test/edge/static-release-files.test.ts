import { existsSync } from 'node:fs'
import { readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { brotliDecompressSync, gunzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createReleaseFiles } from '../../src/edge/release-files.js'
import { rawTar, SITE, startStaticFixture, storeSite } from './static-fixtures.js'
import type { StaticFixture } from './static-fixtures.js'

let f: StaticFixture

beforeAll(async () => {
  f = await startStaticFixture()
})

afterAll(async () => {
  await f.close()
})

describe('release files', () => {
  it('extracts a release once, whoever asks and however often', async () => {
    const releaseFiles = createReleaseFiles({ blobs: f.blobs, dir: f.releasesDir })
    const before = f.gets()
    const dirs = await Promise.all(Array.from({ length: 20 }, () => releaseFiles(f.sha256)))
    expect(new Set(dirs)).toEqual(new Set([join(f.releasesDir, f.sha256)]))
    expect(f.gets() - before).toBe(1)
    // Another process (another instance) finds it extracted and reads no blob.
    expect(await createReleaseFiles({ blobs: f.blobs, dir: f.releasesDir })(f.sha256)).toBe(dirs[0])
    expect(f.gets() - before).toBe(1)
    for (const [path, content] of Object.entries(SITE)) {
      expect(await readFile(join(dirs[0] as string, path))).toEqual(Buffer.from(content))
    }
  })

  it('two processes extracting at once both end with the same directory and no leftovers', async () => {
    const sha = await storeSite(f.blobs, join(f.tmp, 'race'), { 'index.html': 'race '.repeat(400) }, { gzip: false })
    const dir = join(f.tmp, 'race-releases')
    const [a, b] = await Promise.all([createReleaseFiles({ blobs: f.blobs, dir })(sha), createReleaseFiles({ blobs: f.blobs, dir })(sha)])
    expect(a).toBe(join(dir, sha))
    expect(b).toBe(a)
    expect(await readdir(dir)).toEqual([sha])
    expect(await readFile(join(a, 'index.html'), 'utf8')).toBe('race '.repeat(400))
  })

  it('accepts plain tar as well as tar.gz', async () => {
    const sha = await storeSite(f.blobs, join(f.tmp, 'plain'), { 'a.txt': 'plain' }, { gzip: false })
    const dir = await createReleaseFiles({ blobs: f.blobs, dir: f.releasesDir })(sha)
    expect(await readFile(join(dir, 'a.txt'), 'utf8')).toBe('plain')
  })

  it('leaves files 0444 and directories 0555', async () => {
    const dir = await createReleaseFiles({ blobs: f.blobs, dir: f.releasesDir })(f.sha256)
    expect((await stat(dir)).mode & 0o777).toBe(0o555)
    expect((await stat(join(dir, 'assets'))).mode & 0o777).toBe(0o555)
    expect((await stat(join(dir, 'index.html'))).mode & 0o777).toBe(0o444)
    expect((await stat(join(dir, 'index.html.br'))).mode & 0o777).toBe(0o444)
    if (process.getuid?.() !== 0) await expect(writeFile(join(dir, 'index.html'), 'changed')).rejects.toThrow()
  })

  it('precompresses text-like files above 1 KiB, and only when smaller', async () => {
    const dir = await createReleaseFiles({ blobs: f.blobs, dir: f.releasesDir })(f.sha256)
    const html = await readFile(join(dir, 'index.html'))
    expect(brotliDecompressSync(await readFile(join(dir, 'index.html.br')))).toEqual(html)
    expect(gunzipSync(await readFile(join(dir, 'index.html.gz')))).toEqual(html)
    expect((await stat(join(dir, 'index.html.br'))).size).toBeLessThan(html.length)
    expect(existsSync(join(dir, 'assets/app-Bx12cd34.js.br'))).toBe(true)
    expect(existsSync(join(dir, 'style.css.gz'))).toBe(false) // under 1 KiB
    expect(existsSync(join(dir, 'logo.png.gz'))).toBe(false) // not text
  })

  it('keeps a compressed sibling the site ships itself', async () => {
    const text = 'shipped '.repeat(300)
    const sha = await storeSite(f.blobs, join(f.tmp, 'shipped'), { 'app.js': text, 'app.js.gz': 'not really gzip' }, { gzip: true })
    const dir = await createReleaseFiles({ blobs: f.blobs, dir: f.releasesDir })(sha)
    expect(await readFile(join(dir, 'app.js.gz'), 'utf8')).toBe('not really gzip')
    expect(brotliDecompressSync(await readFile(join(dir, 'app.js.br'))).toString()).toBe(text)
  })

  it('refuses a release with an entry outside its root, and extracts no links', async () => {
    const releaseFiles = createReleaseFiles({ blobs: f.blobs, dir: join(f.tmp, 'evil-releases') })
    for (const path of ['../escape.txt', 'a/../../escape.txt', '/abs.txt']) {
      const { sha256 } = await f.blobs.put(rawTar([{ path: 'ok.txt', body: 'ok' }, { path, body: 'evil' }]))
      await expect(releaseFiles(sha256)).rejects.toThrow(/outside its root/)
      expect(existsSync(join(f.tmp, 'evil-releases', sha256))).toBe(false)
    }
    expect(existsSync(join(f.tmp, 'escape.txt'))).toBe(false)
    expect(existsSync('/abs.txt')).toBe(false)
    expect((await readdir(join(f.tmp, 'evil-releases'))).filter((name) => name.startsWith('.tmp-'))).toEqual([])

    const { sha256 } = await f.blobs.put(
      rawTar([
        { path: 'index.html', body: 'hi' },
        { path: 'passwd', type: 'SymbolicLink', linkpath: '/etc/passwd' },
        { path: 'hard', type: 'Link', linkpath: 'index.html' },
      ]),
    )
    const dir = await releaseFiles(sha256)
    expect((await readdir(dir)).sort()).toEqual(['index.html'])
  })

  it('refuses a name that is not a sha256, and reports a missing blob', async () => {
    const releaseFiles = createReleaseFiles({ blobs: f.blobs, dir: f.releasesDir })
    await expect(releaseFiles('../../etc')).rejects.toThrow(/sha256/)
    await expect(releaseFiles('0'.repeat(64))).rejects.toThrow(/not found/)
    // A failure is not remembered as a result.
    await expect(releaseFiles('0'.repeat(64))).rejects.toThrow(/not found/)
  })
})
