import type { RuntimeDriver, RuntimeTemplate, TemplateProgress } from '../runtime/runtime-driver.js'
import { MiosaError } from './errors.js'

/** Sandbox templates: what they are, and building them ahead of first use. */
export class TemplateService {
  constructor(private readonly runtime: RuntimeDriver) {}

  list(): Promise<RuntimeTemplate[]> {
    return this.runtime.listTemplates()
  }

  async build(name: string, onProgress?: (p: TemplateProgress) => void, signal?: AbortSignal): Promise<RuntimeTemplate> {
    await this.runtime.prepareTemplate(name, onProgress, signal)
    const built = (await this.runtime.listTemplates()).find((t) => t.name === name)
    if (built === undefined) throw new MiosaError('not_found', `template ${name} not found`)
    return built
  }
}
