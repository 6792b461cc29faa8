// The benchmark's token endpoint: as fast as node:http allows, so that what is measured is the proxy.
// Every reply is a ~1.2 KB token response with a fresh refresh token. Prints {"port"} when listening; answers
// the IPC message 'calls' with how many token requests it has served.
import http from 'node:http';
import { tokenReplyBody } from './token-reply.mjs';

let calls = 0;
let connections = 0;

const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    calls++;
    const body = tokenReplyBody(calls);
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store', pragma: 'no-cache', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});
server.keepAliveTimeout = 60_000;
server.on('connection', () => connections++);
server.listen(0, '127.0.0.1', () => process.send?.({ port: server.address().port }));
process.on('message', (message) => {
  if (message === 'calls') process.send?.({ calls, connections });
  if (message === 'stats') {
    const cpu = process.cpuUsage();
    process.send?.({ cpuMicros: cpu.user + cpu.system, peakRssKb: process.resourceUsage().maxRSS, rssKb: Math.round(process.memoryUsage.rss() / 1024) });
  }
});
