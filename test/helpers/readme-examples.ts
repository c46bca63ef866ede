// The README's code examples, read as a user would copy them: each fenced block with its
// language and the heading it sits under, and each `sh` block split into commands (lines
// joined at a trailing `\`, comments and blank lines dropped, a trailing `# …` comment
// cut where the `#` stands outside quotes). A trailing `# → text` comment says what the
// command prints: the text is kept as the command's expected output.

export interface CodeBlock {
  /** The nearest `##` or `###` heading above the block. */
  section: string
  lang: string
  /** 1-based line of the opening fence. */
  line: number
  text: string
}

export interface ShellCommand {
  section: string
  /** 1-based line the command starts on. */
  line: number
  command: string
  /** From a trailing `# → text` comment: text the command prints. */
  prints?: string
}

export function codeBlocks(markdown: string): CodeBlock[] {
  const blocks: CodeBlock[] = []
  const lines = markdown.split('\n')
  let section = ''
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string
    const heading = /^#{2,3}\s+(.*)$/.exec(line)
    if (heading !== null) section = (heading[1] as string).trim()
    const fence = /^```(\S*)\s*$/.exec(line)
    if (fence === null) continue
    const start = i
    const body: string[] = []
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i] as string); i++) body.push(lines[i] as string)
    blocks.push({ section, lang: fence[1] as string, line: start + 1, text: body.join('\n') })
  }
  return blocks
}

export function shellCommands(blocks: readonly CodeBlock[]): ShellCommand[] {
  const commands: ShellCommand[] = []
  for (const block of blocks.filter((b) => b.lang === 'sh')) {
    const lines = block.text.split('\n')
    for (let i = 0; i < lines.length; i++) {
      const line = block.line + 1 + i
      let raw = lines[i] as string
      let text = stripComment(raw)
      while (text.endsWith('\\') && i + 1 < lines.length) {
        raw = (lines[++i] as string).trim()
        text = `${text.slice(0, -1).trimEnd()} ${stripComment(raw)}`
      }
      text = text.trim()
      const prints = /#\s*→\s*(.+)$/.exec(raw.slice(stripComment(raw).length))?.[1]?.trim()
      if (text !== '') commands.push({ section: block.section, line, command: text, ...(prints === undefined ? {} : { prints }) })
    }
  }
  return commands
}

/** The line without a `#` comment that starts outside quotes after a blank (or at the start). */
export function stripComment(line: string): string {
  let quote: string | undefined
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string
    if (quote !== undefined) {
      if (c === quote) quote = undefined
      else if (c === '\\' && quote === '"') i++
    } else if (c === "'" || c === '"') quote = c
    else if (c === '\\') i++
    else if (c === '#' && (i === 0 || /\s/.test(line[i - 1] as string))) return line.slice(0, i).trimEnd()
  }
  return line.trimEnd()
}
