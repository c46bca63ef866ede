import { describe, expect, it } from 'vitest'
import { compiledDockerfile } from '../../src/builder/compiled-dockerfiles.js'
import { detectPlan } from '../../src/builder/detect.js'
import { BASE_IMAGE } from '../../src/runtime/docker/template-images.js'

// The Go and Ruby Dockerfiles, from the plans detection makes: what each stage holds.

function dockerfile(files: Record<string, string>): string {
  const plan = detectPlan({ files: Object.keys(files).sort(), read: (path) => files[path] }, 'auto', {})
  return compiledDockerfile({ plan, image: `miosa/template-${plan.detected}:abc`, user: 'miosa', files: Object.keys(files) })
}

describe('compiledDockerfile', () => {
  it('Go: builds in the go template, releases the binary alone on the Debian base, declares no build args', () => {
    const text = dockerfile({ 'go.mod': 'module x\n', 'go.sum': '', 'main.go': '' })
    const [build, release] = text.split(/^FROM /m).slice(1)
    expect(build).toMatch(/^miosa\/template-go:abc AS build\n/)
    expect(build).toContain('ENV CGO_ENABLED=0 GOFLAGS=-trimpath')
    // Modules download before the source comes in, so a rebuild with the same go.sum reuses them.
    expect(build?.indexOf('"go","mod","download"')).toBeLessThan(build?.indexOf('COPY --chown=miosa:miosa ["app/","./"]') ?? 0)
    expect(build).toContain('"go","build","-o","app","."]')
    expect(release).toMatch(new RegExp(`^${BASE_IMAGE}\\n`))
    expect(release).toContain('COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt')
    expect(release).toContain('COPY --from=build --chown=miosa:miosa ["/workspace/app","/workspace/app"]')
    expect(release).not.toMatch(/COPY (?!--from=build)/)
    expect(release).toMatch(/USER miosa\nWORKDIR \/workspace\nENV PORT=8080\nEXPOSE 8080\nCMD \["\.\/app"\]\n$/)
    expect(text).not.toMatch(/^ARG /m)
    // Vendored modules: nothing to download.
    expect(dockerfile({ 'go.mod': 'module x\n', 'go.sum': '', 'main.go': '', 'vendor/modules.txt': '' })).not.toContain('"mod","download"')
  })

  it('Ruby: the bundle installs from the Gemfile and vendor/cache before the rest of the source', () => {
    const text = dockerfile({ Gemfile: "gem 'rack'\n", 'Gemfile.lock': '', 'config.ru': '', 'vendor/cache/rack-2.2.gem': '' })
    expect(text).toMatch(/^FROM miosa\/template-ruby:abc\n/m)
    const gemfile = text.indexOf('COPY --chown=miosa:miosa ["app/Gemfile","app/Gemfile.lock","./"]')
    const cache = text.indexOf('COPY --chown=miosa:miosa ["app/vendor/cache/","./vendor/cache/"]')
    const install = text.indexOf('"bundle","install","--local","--no-cache"]')
    const source = text.indexOf('COPY --chown=miosa:miosa ["app/","./"]')
    expect([gemfile, cache, install, source].every((i) => i > 0)).toBe(true)
    expect(gemfile < cache && cache < install && install < source).toBe(true)
    expect(text).toContain('ENV PORT=8080 RACK_ENV=production')
    expect(text).toContain('CMD ["sh","-lc","puma -b tcp://0.0.0.0:$PORT config.ru"]')
    expect(text).not.toMatch(/^ARG /m)
    // A config.ru without a Gemfile: nothing to install.
    expect(dockerfile({ 'config.ru': '' })).not.toContain('"bundle"')
  })
})
