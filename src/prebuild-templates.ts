import type { TemplateService } from './core/templates.js'

// `miosa server --prebuild-templates`: builds every sandbox template image before the
// platform serves, so no first `sandbox create` waits minutes for one. Progress goes to
// stderr one line per template and Dockerfile step (not every line a build prints).

export async function prebuildTemplates(templates: TemplateService, write: (line: string) => void): Promise<void> {
  const all = await templates.list()
  const missing = all.filter((t) => !t.built)
  if (missing.length === 0) {
    write(`templates: all ${all.length} built`)
    return
  }
  const started = Date.now()
  write(`templates: building ${missing.map((t) => t.name).join(', ')} before serving (the first build of all takes a few minutes)`)
  for (const [i, t] of missing.entries()) {
    let shown = ''
    await templates.build(t.name, (p) => {
      const at = p.done === true ? p.message : p.step === undefined || p.steps === undefined ? '' : `step ${p.step}/${p.steps}: ${p.message}`
      const key = `${p.template} ${p.done === true ? 'done' : (p.step ?? '')}`
      if (at === '' || key === shown) return
      shown = key
      write(`templates: [${i + 1}/${missing.length}] ${p.template}: ${at}`)
    })
  }
  write(`templates: built in ${((Date.now() - started) / 1000).toFixed(1)} s`)
}
