// Which paths of a workspace a source snapshot leaves out: dependency, cache and VCS
// directories always, plus what the workspace's own `.miosaignore` names. The file uses a
// simple subset of .gitignore: `#` comments, blank lines, `*`, `?` and `**` globs, a
// trailing `/` for directories only, a leading (or inner) `/` anchoring to the root, and
// `!` to take a path back. As in git, nothing below an ignored directory comes back.

/** Directory names left out wherever they are. */
export const ALWAYS_IGNORED_DIRS = ['node_modules', '.git', '.cache', '__pycache__', '.venv'] as const
/** Directory paths (segment sequences) left out wherever they are. */
const ALWAYS_IGNORED_PAIRS = [['.next', 'cache']] as const

export const IGNORE_FILE = '.miosaignore'

interface Rule {
  negate: boolean
  dirOnly: boolean
  anchored: boolean
  pattern: RegExp
}

export interface IgnoreRules {
  /** `path` is relative to the root, `/`-separated, without `./` or a trailing slash. */
  ignores(path: string, isDir: boolean): boolean
}

/** True for a path inside (or naming) one of the directories every snapshot leaves out. */
export function alwaysIgnored(path: string, isDir: boolean): boolean {
  const segments = path.split('/')
  const dirs = isDir ? segments : segments.slice(0, -1)
  if (dirs.some((s) => (ALWAYS_IGNORED_DIRS as readonly string[]).includes(s))) return true
  for (const [first, second] of ALWAYS_IGNORED_PAIRS) {
    for (let i = 0; i + 1 < dirs.length; i++) if (dirs[i] === first && dirs[i + 1] === second) return true
  }
  return false
}

export function parseIgnoreFile(text: string): IgnoreRules {
  const rules: Rule[] = []
  for (const raw of text.split(/\r?\n/)) {
    let line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    const negate = line.startsWith('!')
    if (negate) line = line.slice(1)
    const dirOnly = line.endsWith('/')
    line = line.replace(/\/+$/, '')
    const anchored = line.includes('/')
    line = line.replace(/^\/+/, '')
    if (line === '') continue
    rules.push({ negate, dirOnly, anchored, pattern: globToRegExp(line) })
  }
  return {
    ignores(path: string, isDir: boolean): boolean {
      const segments = path.split('/')
      // An ignored ancestor directory hides everything below it.
      for (let i = 1; i < segments.length; i++) {
        if (matches(rules, segments.slice(0, i).join('/'), true)) return true
      }
      return matches(rules, path, isDir)
    },
  }
}

/** The last rule that matches decides, as in git. */
function matches(rules: readonly Rule[], path: string, isDir: boolean): boolean {
  let ignored = false
  const base = path.slice(path.lastIndexOf('/') + 1)
  for (const rule of rules) {
    if (rule.dirOnly && !isDir) continue
    if (rule.pattern.test(rule.anchored ? path : base)) ignored = !rule.negate
  }
  return ignored
}

function globToRegExp(glob: string): RegExp {
  let out = ''
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string
    if (c === '*' && glob[i + 1] === '*') {
      // `**/` any number of directories (none included), `/**` everything below, else any text.
      if (glob[i + 2] === '/') {
        out += '(?:.*/)?'
        i += 2
      } else {
        out += '.*'
        i += 1
      }
    } else if (c === '*') out += '[^/]*'
    else if (c === '?') out += '[^/]'
    else out += c.replace(/[.+^${}()|[\]\\]/g, '\\$&')
  }
  return new RegExp(`^${out}$`)
}
