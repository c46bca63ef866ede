import { MiosaError, isErrorCode } from '../core/errors.js'
import type { Template, TemplateBuildEvent } from '../schemas/sandboxes.js'
import { bodyOf, readNdjson } from './streams.js'
import type { Transport } from './transport.js'

export interface TemplateProgress {
  /** The image being built now (the template, or a parent it needs first). */
  template: string
  message: string
  /** Its Dockerfile step, of `steps` (null before the first step, and for the Debian base). */
  step: number | null
  steps: number | null
}

/** Sandbox templates: what exists, and building their images ahead of first use (root key). */
export class Templates {
  constructor(
    private readonly transport: Transport,
    private readonly path: string,
  ) {}

  async list(): Promise<Template[]> {
    return (await this.transport.request<{ data: Template[] }>('GET', this.path)).data
  }

  /** Builds one template, or every one without a name; progress arrives as it happens. Answers the built templates. */
  async build(name?: string, onProgress?: (p: TemplateProgress) => void, options: { signal?: AbortSignal } = {}): Promise<Template[]> {
    const response = await this.transport.send('POST', `${this.path}/build`, {
      json: name === undefined ? {} : { name },
      accept: 'application/x-ndjson',
      signal: options.signal,
    })
    for await (const line of readNdjson(bodyOf(response))) {
      const event = line as TemplateBuildEvent
      if (event.type === 'progress') onProgress?.({ template: event.template, message: event.message, step: event.step ?? null, steps: event.steps ?? null })
      else if (event.type === 'done') return event.templates
      else if (event.type === 'error') throw new MiosaError(isErrorCode(event.error.code) ? event.error.code : 'internal', event.error.message)
    }
    throw new MiosaError('unavailable', 'the build stream ended before the build finished')
  }
}
