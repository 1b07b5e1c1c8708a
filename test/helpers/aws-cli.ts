// The AWS CLI as a second reader of what memsync wrote: another S3 client entirely, so an object
// that only memsync's own SDK setup reads back correctly does not pass for a good one.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { S3TestServer } from './s3-fixture.js';

const MAX_OBJECT_BYTES = 256 * 1024 * 1024;
const VERSION_PROBE_TIMEOUT_MS = 30_000;
const READ_TIMEOUT_MS = 120_000;

function run(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    execFile('aws', args, { env, encoding: 'buffer', maxBuffer: MAX_OBJECT_BYTES, timeout: timeoutMs }, (error, stdout, stderr) => {
      if (error) reject(new Error(`aws ${args.slice(0, 2).join(' ')}: ${error.message} ${stderr.toString().trim()}`));
      else resolve(stdout);
    });
  });
}

let availability: Promise<string | null> | undefined;

/** null when `aws` is on PATH and runs, else why not. */
export function awsCliUnavailable(): Promise<string | null> {
  availability ??= run(['--version'], process.env, VERSION_PROBE_TIMEOUT_MS).then(
    () => null,
    (error: unknown) => `no working AWS CLI on PATH (${error instanceof Error ? error.message : String(error)})`,
  );
  return availability;
}

/** The object's bytes as `aws s3 cp s3://bucket/key -` reads them, path-style, with the test server's credentials. */
export async function readWithAwsCli(server: S3TestServer, bucket: string, fullKey: string): Promise<Buffer> {
  const configDir = await mkdtemp(path.join(os.tmpdir(), 'memsync-awscli-'));
  try {
    const configFile = path.join(configDir, 'config');
    await writeFile(configFile, '[default]\ns3 =\n  addressing_style = path\n');
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      AWS_ACCESS_KEY_ID: server.accessKeyId,
      AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
      AWS_DEFAULT_REGION: server.region,
      AWS_CONFIG_FILE: configFile,
      AWS_SHARED_CREDENTIALS_FILE: path.join(configDir, 'no-credentials'),
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_PROFILE: undefined,
      AWS_SESSION_TOKEN: undefined,
    };
    return await run(['s3', 'cp', `s3://${bucket}/${fullKey}`, '-', '--endpoint-url', server.endpoint, '--only-show-errors'], env, READ_TIMEOUT_MS);
  } finally {
    await rm(configDir, { recursive: true, force: true });
  }
}
