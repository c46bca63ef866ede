import { describe, expect, it } from 'vitest'
import { PreviewUrls } from '../../src/core/preview-urls.js'

describe('PreviewUrls', () => {
  it('http on the edge port without a public URL; the port read when the URL is made', () => {
    let port = 0
    const urls = new PreviewUrls({ edgePublicUrl: undefined, edgePort: () => port, baseDomain: 'localhost' })
    port = 8081
    expect(urls.url('ab12cd34', 3000)).toBe('http://3000-ab12cd34.sandbox.localhost:8081')
    expect(urls.url('ab12cd34', 3000, null)).toBe('http://3000-ab12cd34.sandbox.localhost:8081')
    expect(urls.url('ab12cd34', 5173, 'preview.example.com')).toBe('http://5173-ab12cd34.preview.example.com:8081')
    expect(urls.withToken(urls.url('ab12cd34', 3000), 'mp_a.b')).toBe('http://3000-ab12cd34.sandbox.localhost:8081/?token=mp_a.b')
  })

  it("the public URL's scheme and port, with no port where it is the scheme's own", () => {
    const https = new PreviewUrls({ edgePublicUrl: 'https://miosa.example.com', edgePort: 8081, baseDomain: 'miosa.app' })
    expect(https.url('ab12cd34', 5173)).toBe('https://5173-ab12cd34.sandbox.miosa.app')
    expect(https.url('ab12cd34', 3000, 'preview.yourproduct.com')).toBe('https://3000-ab12cd34.preview.yourproduct.com')
    const http80 = new PreviewUrls({ edgePublicUrl: 'http://edge.example.com:80', edgePort: 8081, baseDomain: 'example.com' })
    expect(http80.url('x', 3000)).toBe('http://3000-x.sandbox.example.com')
    const custom = new PreviewUrls({ edgePublicUrl: 'https://edge.example.com:8443', edgePort: 8081, baseDomain: 'example.com' })
    expect(custom.url('x', 3000)).toBe('https://3000-x.sandbox.example.com:8443')
  })
})
