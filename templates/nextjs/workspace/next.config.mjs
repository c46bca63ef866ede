/** @type {import('next').NextConfig} */
const nextConfig = {
  // A self-contained server in .next/standalone (node .next/standalone/server.js): a
  // published release carries it and the assets it serves, not node_modules.
  output: 'standalone',
}

export default nextConfig
