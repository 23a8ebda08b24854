// Runs the real @pyroscope/nodejs SDK against the gateway for a bounded time
// (argv: server address, seconds). A bearer token from PYROGATE_TEST_AUTH_TOKEN when set.
// Driven by tests/real_clients.rs and tests/auth.rs.
const Pyroscope = require('@pyroscope/nodejs');
const crypto = require('crypto');

Pyroscope.init({
  serverAddress: process.argv[2],
  appName: 'pyrogate.test.node',
  tags: { env: 'ci' },
  flushIntervalMs: 2000,
  authToken: process.env.PYROGATE_TEST_AUTH_TOKEN || undefined,
});
Pyroscope.start();
const end = Date.now() + Number(process.argv[3]) * 1000;
function work() {
  for (let i = 0; i < 2000; i++) crypto.createHash('sha256').update(String(i)).digest();
}
const t = setInterval(() => {
  work();
  if (Date.now() > end) {
    clearInterval(t);
    Pyroscope.stop().then(() => console.log('done'));
  }
}, 5);
