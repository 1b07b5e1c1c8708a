// The peer tools, as Debian ships them, configured as shared/S3_TEST_SERVERS.md says: the AWS CLI v2
// (/usr/bin/aws, path-style addressing) and rclone (provider Other, force_path_style; run without
// AWS_CA_BUNDLE, which rclone 1.60 cannot use). Both run with their default concurrency.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Rgw } from './rgw.js';

export const AWS = '/usr/bin/aws';
export const RCLONE = '/usr/bin/rclone';

export interface Peers {
  awsEnv: NodeJS.ProcessEnv;
  rcloneEnv: NodeJS.ProcessEnv;
  rcloneConfig: string;
  endpoint: string;
}

export function configurePeers(dir: string, rgw: Rgw): Peers {
  const awsConfig = path.join(dir, 'aws-config');
  const awsCredentials = path.join(dir, 'aws-credentials');
  const rcloneConfig = path.join(dir, 'rclone.conf');
  writeFileSync(awsConfig, `[default]\nregion = ${rgw.region}\ns3 =\n  addressing_style = path\n`);
  writeFileSync(awsCredentials, `[default]\naws_access_key_id = ${rgw.accessKey}\naws_secret_access_key = ${rgw.secretKey}\n`);
  writeFileSync(
    rcloneConfig,
    `[rgw]\ntype = s3\nprovider = Other\naccess_key_id = ${rgw.accessKey}\nsecret_access_key = ${rgw.secretKey}\nendpoint = ${rgw.endpoint}\nforce_path_style = true\nregion = ${rgw.region}\n`,
  );
  const base: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!/^(AWS_|RCLONE_)/.test(key)) base[key] = value;
  return {
    awsEnv: { ...base, AWS_CONFIG_FILE: awsConfig, AWS_SHARED_CREDENTIALS_FILE: awsCredentials, AWS_PAGER: '' },
    rcloneEnv: base,
    rcloneConfig,
    endpoint: rgw.endpoint,
  };
}

export type PeerName = 'aws' | 'rclone';
export const PEERS: readonly PeerName[] = ['aws', 'rclone'];

export interface PeerCommand {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
}

/** Local folder -> s3://bucket/prefix: `aws s3 cp --recursive` / `rclone copy`. */
export function uploadCommand(peers: Peers, tool: PeerName, localDir: string, bucket: string, prefix: string): PeerCommand {
  if (tool === 'aws') {
    return { command: AWS, args: ['--endpoint-url', peers.endpoint, 's3', 'cp', '--recursive', '--only-show-errors', localDir, `s3://${bucket}/${prefix}`], env: peers.awsEnv };
  }
  return { command: RCLONE, args: ['--config', peers.rcloneConfig, 'copy', localDir, `rgw:${bucket}/${prefix}`], env: peers.rcloneEnv };
}

/** s3://bucket/prefix -> local folder. */
export function downloadCommand(peers: Peers, tool: PeerName, bucket: string, prefix: string, localDir: string): PeerCommand {
  if (tool === 'aws') {
    return { command: AWS, args: ['--endpoint-url', peers.endpoint, 's3', 'cp', '--recursive', '--only-show-errors', `s3://${bucket}/${prefix}`, localDir], env: peers.awsEnv };
  }
  return { command: RCLONE, args: ['--config', peers.rcloneConfig, 'copy', `rgw:${bucket}/${prefix}`, localDir], env: peers.rcloneEnv };
}

/** What would be uploaded from local to remote: `aws s3 sync --dryrun` / `rclone copy --dry-run`. */
export function dryRunCommand(peers: Peers, tool: PeerName, localDir: string, bucket: string, prefix: string): PeerCommand {
  if (tool === 'aws') {
    return { command: AWS, args: ['--endpoint-url', peers.endpoint, 's3', 'sync', '--dryrun', localDir, `s3://${bucket}/${prefix}`], env: peers.awsEnv };
  }
  return { command: RCLONE, args: ['--config', peers.rcloneConfig, 'copy', '--dry-run', localDir, `rgw:${bucket}/${prefix}`], env: peers.rcloneEnv };
}

/** Lines of a dry run's output that announce a transfer (0 means "nothing to do"). */
export function dryRunTransfers(tool: PeerName, stdout: string, stderr: string): number {
  if (tool === 'aws') return stdout.split('\n').filter((line) => line.startsWith('(dryrun)')).length;
  return stderr.split('\n').filter((line) => line.includes('Skipped copy as --dry-run is set')).length;
}

export function peerVersions(): Record<PeerName, string> {
  const first = (command: string, args: string[], env?: NodeJS.ProcessEnv): string => {
    try {
      return execFileSync(command, args, { encoding: 'utf8', env }).split('\n')[0]?.trim() ?? '?';
    } catch (error) {
      return `unavailable (${(error as Error).message.split('\n')[0]})`;
    }
  };
  return { aws: first(AWS, ['--version']), rclone: first(RCLONE, ['version']) };
}
