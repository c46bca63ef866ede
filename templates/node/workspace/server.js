// The node template's starter: a node:http server on $PORT (3000 when unset).
// `npm start` runs it; `miosa deploy --sandbox <id>` publishes it as it is.
const http = require('node:http')

const port = Number(process.env.PORT || 3000)

http
  .createServer((req, res) => {
    res.setHeader('content-type', 'text/plain; charset=utf-8')
    res.end('Hello from miosa (node)\n')
  })
  .listen(port, () => console.log(`listening on ${port}`))
