import type { Command } from 'commander'
import { command, run } from '../../command.js'
import { renderPage } from '../../output.js'
import { stepOf } from '../../progress.js'

// Sandbox templates: which exist and whether their images are built; building them ahead
// of first use (root key), with the build's progress on stderr.

const COLUMNS = ['name', 'built', 'size_bytes', 'user', 'default_port', 'description'] as const

export function registerTemplates(program: Command): void {
  const group = program.command('templates').description('sandbox templates: list them, build their images ahead of first use')

  run(command(group, 'list', 'list sandbox templates and whether each image is built'), async ({ client }) => {
    const templates = await (await client()).templates.list()
    return { data: { data: templates }, human: renderPage({ data: templates, next_cursor: null }, COLUMNS) }
  })

  const build = command(group, 'build [name]', 'build one template image, or every one (root key); a built one is reused').addHelpText(
    'after',
    '\nExamples:\n  miosa templates build            every template (the first build of all takes a few minutes)\n  miosa templates build nextjs --json',
  )
  run(build, async ({ client, progress }, [name]) => {
    const display = progress()
    display.update(name === undefined ? 'building every template…' : `building ${name}…`)
    try {
      const built = await (await client()).templates.build(name, (p) => {
        const step = stepOf(p)
        display.update(`${p.template}${step === '' ? '' : ` ${step}`}: ${p.message}`, { stage: 'building_template', template: p.template, step: p.step, steps: p.steps })
      })
      display.done(`built ${built.map((t) => t.name).join(', ')}`)
      return { data: { data: built }, human: renderPage({ data: built, next_cursor: null }, COLUMNS) }
    } catch (error) {
      display.done()
      throw error
    }
  })
}
