// The in-process events live in core (services default to them); fleet code finds them here beside the PostgreSQL ones.
export { InProcessEvents } from '../core/in-process-events.js'
