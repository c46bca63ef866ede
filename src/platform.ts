// The package's entry: the platform as one process (`--role all`), and an extra edge
// (`--role edge`). Each role's composition root is in src/roles/.
export { createAll as createPlatform } from './roles/all.js'
export type { Platform, StartedPlatform } from './roles/all.js'
export { createEdgeProcess } from './roles/edge-only.js'
export type { EdgeProcess } from './roles/edge-only.js'
