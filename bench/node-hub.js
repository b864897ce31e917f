// The SSE hub of the common tutorials, for bench/compare: Node's built-in `http` only, a Set of
// open responses, `data:` writes, and POST /publish whose raw body is the event data.
// Usage: node bench/node-hub.js PORT
'use strict';
const http = require('http');

const port = Number(process.argv[2] || 3100);
const clients = new Set();

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url.startsWith('/events')) {
    res.writeHead(200, {
      'Content-Type': 'text/event-stream',
      'Cache-Control': 'no-cache',
      Connection: 'keep-alive',
    });
    res.write(': connected\n\n');
    clients.add(res);
    req.on('close', () => clients.delete(res));
    return;
  }
  if (req.method === 'POST' && req.url === '/publish') {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      const frame = `data: ${body}\n\n`;
      for (const client of clients) client.write(frame);
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ delivered: clients.size }));
    });
    return;
  }
  res.writeHead(404);
  res.end();
});

// Tutorials leave the defaults; these two only keep Node from closing benchmark connections.
server.keepAliveTimeout = 60000;
server.headersTimeout = 65000;
server.requestTimeout = 0;
server.listen(port, '127.0.0.1', () => console.log(`node hub on 127.0.0.1:${port}`));
