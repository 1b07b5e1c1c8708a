// Runs s3rver in its own process, because it needs `node --openssl-legacy-provider` (without it paginated
// listings answer 500) and that flag must not leak into the test runner's process.
// usage: node --openssl-legacy-provider s3rver-child.mjs DATA_DIR
// stdout: first a line {"port":N} once listening, then s3rver's request and error log.
// Exits on SIGTERM/SIGINT, or when stdin closes (the parent died).
import { mkdirSync } from 'node:fs';
import S3rver from 's3rver';

const directory = process.argv[2];
if (!directory) {
  console.error('usage: s3rver-child.mjs DATA_DIR');
  process.exit(2);
}
mkdirSync(directory, { recursive: true }); // s3rver answers ListBuckets with a 500 until the directory exists
const server = new S3rver({ address: '127.0.0.1', port: 0, directory, silent: false });
const { port } = await server.run();
process.stdout.write(`${JSON.stringify({ port })}\n`);

let closing = false;
const shutdown = () => {
  if (closing) return;
  closing = true;
  // close() waits for keep-alive sockets; do not let a client that holds one keep us alive
  setTimeout(() => process.exit(0), 2000).unref();
  server.close().then(() => process.exit(0), () => process.exit(1));
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
process.stdin.on('end', shutdown).on('error', shutdown).resume();
