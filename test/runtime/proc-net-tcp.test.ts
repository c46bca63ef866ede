import { describe, expect, it } from 'vitest'
import { isLoopback, parseProcNetTcp } from '../../src/runtime/proc-net-tcp.js'

// Rows as the kernel prints them (Linux x86-64), from a container with a server on
// 0.0.0.0:3000, Docker's embedded DNS on 127.0.0.11, and IPv6 sockets.
const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0B00007F:A1C3 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 39721 1 0000000000000000 100 0 0 10 0
   1: 00000000:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 7400 1 0000000000000000 100 0 0 10 0
   2: 0200120A:0BB8 0300120A:D2F0 01 00000000:00000000 00:00000000 00000000  1000        0 7401 1 0000000000000000 20 4 30 10 -1
`
const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F40 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0 100 0 0 10 0
   1: 00000000000000000000000001000000:0FA0 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 2 1 0 100 0 0 10 0
   2: 0000000000000000FFFF00000100007F:1388 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 3 1 0 100 0 0 10 0
`

describe('parseProcNetTcp', () => {
  it('answers the listening sockets of both tables, with their addresses decoded, and nothing else', () => {
    expect(parseProcNetTcp(`${TCP}${TCP6}`)).toEqual([
      { host: '127.0.0.11', port: 41411 },
      { host: '0.0.0.0', port: 3000 },
      { host: '::', port: 8000 },
      { host: '::1', port: 4000 },
      { host: '::ffff:127.0.0.1', port: 5000 },
    ])
  })

  it('tells loopback-only sockets from reachable ones', () => {
    expect(parseProcNetTcp(`${TCP}${TCP6}`).map((s) => `${s.host} ${isLoopback(s.host)}`)).toEqual([
      '127.0.0.11 true',
      '0.0.0.0 false',
      ':: false',
      '::1 true',
      '::ffff:127.0.0.1 true',
    ])
  })

  it('ignores text that is not a table row', () => {
    expect(parseProcNetTcp('')).toEqual([])
    expect(parseProcNetTcp('garbage\n  x: y z 0A\n')).toEqual([])
  })
})
