// The deployment examples, held to what memsync accepts: the environment they give memsync
// passes its own validation (secret files included), the backup volume is the same directory
// in both containers, the probes reach memsync's port and never follow the store, no example
// applies placeholder secrets, and every image is pinned.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { KNOWN_VARIABLES, loadConfig, type Config } from '../../src/config.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const DEPLOY = path.join(ROOT, 'deploy');
const COMPOSE_FILE = path.join(DEPLOY, 'docker-compose.yml');
const K8S_FILE = path.join(DEPLOY, 'kubernetes', 'memsync-sidecar.yaml');
const MEMSYNC = 'memsync';
const MEMORY_SERVICE = 'memories';
/** Where the memory service keeps its backups, relative to its DATA_DIR (MEMORY_SERVICE.md). */
const SERVICE_BACKUP_SUBDIR = 'backups';

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), 'memsync-deploy-test-'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

/** name:tag or name@digest where the tag names a version: not `latest`, not absent. */
function expectPinned(image: string, where: string): void {
  if (/@sha256:[0-9a-f]{64}$/.test(image)) return;
  const tag = /:([^/:]+)$/.exec(image)?.[1];
  expect(tag, `${where}: image ${image} has a tag`).toBeDefined();
  expect(tag, `${where}: image ${image}`).not.toBe('latest');
  expect(tag, `${where}: image ${image} tag names a version`).toMatch(/\d/);
}

function expectShowsEveryVariable(text: string, file: string): void {
  // Set or in a comment: the example is where an operator looks up what can be set.
  const missing = KNOWN_VARIABLES.filter((name) => !new RegExp(`\\b${name}\\b`).test(text));
  expect(missing, `variables memsync knows that ${file} does not show`).toEqual([]);
}

// ---------------------------------------------------------------- docker compose

interface ComposeService {
  image?: string;
  build?: string | { context: string; dockerfile?: string };
  user?: string;
  command?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  volumes?: (string | { type?: string; source?: string; target: string; read_only?: boolean })[];
  secrets?: (string | { source: string; target?: string })[];
  depends_on?: string[] | Record<string, unknown>;
  ports?: string[];
  healthcheck?: { test?: string | string[]; disable?: boolean };
}
interface Compose {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
  secrets?: Record<string, { file?: string; environment?: string }>;
}

/** Compose interpolation with the defaults written in the file (`${X:-default}`, `${X}`, `$$`). */
function interpolate(value: string): string {
  return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?]([^}]*))?\}/g, (match, _name, fallback: string | undefined) =>
    match === '$$' ? '$' : (fallback ?? ''),
  );
}

const composeText = readFileSync(COMPOSE_FILE, 'utf8');
const compose = parse(composeText) as Compose;

function service(name: string): ComposeService {
  const found = compose.services[name];
  expect(found, `compose service ${name}`).toBeDefined();
  return found as ComposeService;
}

function composeEnv(svc: ComposeService): Record<string, string> {
  const env: Record<string, string> = {};
  const entries = Array.isArray(svc.environment)
    ? svc.environment.map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)] as const)
    : Object.entries(svc.environment ?? {});
  for (const [key, value] of entries) if (value !== null) env[key] = interpolate(String(value));
  return env;
}

interface Mount {
  source: string;
  target: string;
  readOnly: boolean;
}

function composeMounts(svc: ComposeService): Mount[] {
  return (svc.volumes ?? []).map((volume) => {
    if (typeof volume === 'string') {
      const [source = '', target = '', mode = ''] = interpolate(volume).split(':');
      return { source, target, readOnly: mode.split(',').includes('ro') };
    }
    return { source: volume.source ?? '', target: volume.target, readOnly: volume.read_only === true };
  });
}

/** The secret files compose mounts at /run/secrets/<name>, mapped to their files in deploy/. */
function composeSecretFiles(svc: ComposeService): Map<string, string> {
  const files = new Map<string, string>();
  for (const entry of svc.secrets ?? []) {
    const source = typeof entry === 'string' ? entry : entry.source;
    const target = typeof entry === 'string' ? entry : (entry.target ?? entry.source);
    const file = compose.secrets?.[source]?.file;
    expect(file, `top-level secret ${source} has a file`).toBeDefined();
    files.set(path.posix.resolve('/run/secrets', target), path.resolve(DEPLOY, file as string));
  }
  return files;
}

function dependsOn(svc: ComposeService): string[] {
  return Array.isArray(svc.depends_on) ? svc.depends_on : Object.keys(svc.depends_on ?? {});
}

function composeMemsyncConfig(): Config {
  const env = composeEnv(service(MEMSYNC));
  const secretFiles = composeSecretFiles(service(MEMSYNC));
  for (const [key, value] of Object.entries(env)) {
    if (!key.endsWith('_FILE')) continue;
    const local = secretFiles.get(value);
    expect(local, `${key}=${value} is a secret mounted into memsync`).toBeDefined();
    if (key === 'CLOUD_SYNC_API_TOKEN_FILE' && !existsSync(local as string)) {
      // Generated by the operator before the first start (deploy/README.md), never shipped.
      env[key] = path.join(scratch, 'compose-api-token');
      writeFileSync(env[key], `${randomBytes(32).toString('hex')}\n`);
      continue;
    }
    expect(existsSync(local as string), `${local} exists`).toBe(true);
    env[key] = local as string; // the local-only values themselves must pass validation
  }
  return loadConfig(env);
}

describe('deploy/docker-compose.yml', () => {
  it('sets on memsync only variables memsync knows, and shows every one it knows', () => {
    const env = composeEnv(service(MEMSYNC));
    for (const key of Object.keys(env)) expect(KNOWN_VARIABLES, `memsync environment ${key}`).toContain(key);
    expectShowsEveryVariable(composeText, 'docker-compose.yml');
  });

  it('gives memsync an environment, secret files included, that passes its validation', () => {
    const config = composeMemsyncConfig();
    expect(config.enabled).toBe(true);
    expect(config.s3.credentials).toBeDefined();
    expect(config.http.apiToken).toBeDefined();
    expect(config.memoryService?.apiKey).toBeDefined();
    expect(config.stateDir).not.toBe(path.join(path.dirname(config.backupDir), '.memsync-state'));
  });

  it('points memsync at services of this file: MinIO, the bucket it creates, and the memory service', () => {
    const config = composeMemsyncConfig();
    const endpoint = new URL(config.s3.endpoint ?? '');
    expect(Object.keys(compose.services)).toContain(endpoint.hostname);
    const setup = Object.entries(compose.services).find(([, svc]) => (svc.image ?? '').startsWith('minio/mc:'));
    expect(setup, 'a minio/mc one-shot service').toBeDefined();
    const [setupName, setupService] = setup as [string, ComposeService];
    expect(String(setupService.command ?? '')).toContain(`/${config.s3.bucket}`);
    expect(dependsOn(service(MEMSYNC))).toContain(setupName);
    // The credentials memsync reads are the ones the setup creates its user from.
    expect(composeSecretFiles(setupService)).toEqual(
      new Map([...composeSecretFiles(service(MEMSYNC))].filter(([, file]) => /s3-/.test(path.basename(file)))),
    );

    const url = new URL(config.memoryService?.url ?? '');
    expect(url.hostname).toBe(MEMORY_SERVICE);
    const servicePorts = (service(MEMORY_SERVICE).ports ?? []).map((p) => p.split(':').at(-1));
    expect(servicePorts).toContain(url.port);
    expect(composeEnv(service(MEMORY_SERVICE)).API_KEY).toBe(config.memoryService?.apiKey);
  });

  it('mounts one volume read-write at the backup directory in both the memory service and memsync', () => {
    const config = composeMemsyncConfig();
    const memsyncMount = composeMounts(service(MEMSYNC)).find((m) => m.target === config.backupDir);
    expect(memsyncMount, `memsync mounts ${config.backupDir}`).toBeDefined();
    expect(Object.keys(compose.volumes ?? {}), 'a named volume').toContain(memsyncMount?.source);
    expect(memsyncMount?.readOnly).toBe(false);
    const serviceMount = composeMounts(service(MEMORY_SERVICE)).find((m) => m.source === memsyncMount?.source);
    expect(serviceMount).toEqual(memsyncMount);
    // ...and that is where the service writes its backups.
    expect(path.posix.join(composeEnv(service(MEMORY_SERVICE)).DATA_DIR ?? '', SERVICE_BACKUP_SUBDIR)).toBe(config.backupDir);

    const stateMount = composeMounts(service(MEMSYNC)).find((m) => m.target === config.stateDir);
    expect(Object.keys(compose.volumes ?? {}), `the state directory ${config.stateDir} is a named volume`).toContain(stateMount?.source);
  });

  it('hands both of memsync\'s volumes to the user memsync runs as before it starts', () => {
    const memsync = service(MEMSYNC);
    expect(memsync.user, 'memsync runs as the memory service\'s uid').toBeDefined();
    const user = interpolate(memsync.user as string);
    expect(user.split(':')[0]).not.toMatch(/^(0|root)$/);
    const written = composeMounts(memsync).filter((m) => !m.readOnly && m.source !== '').map((m) => m.source);
    const init = Object.entries(compose.services).find(([, svc]) => Array.isArray(svc.command) && svc.command[0] === 'chown');
    expect(init, 'a one-shot chown service').toBeDefined();
    const [initName, initService] = init as [string, ComposeService];
    expect((initService.command as string[]).map(interpolate)[1]).toBe(user);
    for (const source of written) {
      const mount = composeMounts(initService).find((m) => m.source === source);
      expect(mount, `${initName} mounts ${source}`).toBeDefined();
      expect((initService.command as string[]).slice(2)).toContain(mount?.target);
    }
    expect(dependsOn(memsync)).toContain(initName);
  });

  it('ships no API token: the operator generates it, and the README says how', () => {
    const tokenFile = [...composeSecretFiles(service(MEMSYNC))].find(([mounted]) => mounted === composeEnv(service(MEMSYNC)).CLOUD_SYNC_API_TOKEN_FILE)?.[1];
    expect(tokenFile, 'the token comes from a secret file').toBeDefined();
    const relative = path.relative(DEPLOY, tokenFile as string);
    expect(readFileSync(path.join(DEPLOY, 'README.md'), 'utf8')).toMatch(new RegExp(`openssl rand -hex 32[^\\n]*> *${relative.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    const ignored = readFileSync(path.join(path.dirname(tokenFile as string), '.gitignore'), 'utf8').split('\n').map((line) => line.trim());
    expect(ignored, 'a generated token is never committed').toContain(path.basename(tokenFile as string));
  });

  it('never checks memsync\'s health against the store', () => {
    // Without a healthcheck of its own, the image's HEALTHCHECK (/healthz) applies.
    const test = service(MEMSYNC).healthcheck?.test;
    const command = Array.isArray(test) ? test.join(' ') : (test ?? '');
    expect(command, 'a healthcheck on /readyz must exclude the store').not.toMatch(/\/readyz(?![^\s'"]*exclude=remote)/);
  });

  it('builds memsync from this repository\'s Dockerfile', () => {
    const build = service(MEMSYNC).build;
    const context = typeof build === 'string' ? build : build?.context;
    const dockerfile = typeof build === 'string' ? 'Dockerfile' : (build?.dockerfile ?? 'Dockerfile');
    expect(path.resolve(DEPLOY, context ?? '')).toBe(ROOT);
    expect(existsSync(path.join(ROOT, dockerfile))).toBe(true);
    expect(service(MEMORY_SERVICE).build, 'the memory service is built from its repository').toBeDefined();
  });

  it('pins every image', () => {
    for (const [name, svc] of Object.entries(compose.services)) {
      if (svc.build !== undefined && svc.image === undefined) continue;
      expect(svc.image, `${name} has an image or a build`).toBeDefined();
      const image = interpolate(svc.image as string);
      if (svc.build !== undefined) expect(image, `${name} builds its image`).not.toMatch(/:latest$|^[^:]+$/);
      else expectPinned(image, name);
    }
  });
});

// ---------------------------------------------------------------- Kubernetes

interface EnvVar {
  name: string;
  value?: unknown;
  valueFrom?: { secretKeyRef?: { name: string; key: string } };
}
interface Probe {
  httpGet?: { path: string; port: number | string };
  periodSeconds?: number;
  failureThreshold?: number;
}
interface Container {
  name: string;
  image: string;
  ports?: { name?: string; containerPort: number }[];
  env?: EnvVar[];
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean; subPath?: string }[];
  startupProbe?: Probe;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
}
interface Volume {
  name: string;
  persistentVolumeClaim?: { claimName: string };
  emptyDir?: object;
  secret?: { secretName: string; items?: { key: string; path: string }[] };
}
interface K8sObject {
  kind: string;
  metadata: { name: string };
  stringData?: Record<string, string>;
  data?: Record<string, string>;
  spec?: {
    accessModes?: string[];
    strategy?: { type?: string };
    template?: {
      spec: {
        securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
        containers: Container[];
        volumes?: Volume[];
      };
    };
  };
}

const k8sText = readFileSync(K8S_FILE, 'utf8');
const k8sObjects = parseAllDocuments(k8sText).map((doc) => {
  expect(doc.errors, 'YAML errors').toEqual([]);
  return doc.toJS() as K8sObject;
});

function k8s(kind: string, name?: string): K8sObject {
  const found = k8sObjects.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  expect(found, `${kind} ${name ?? ''} in memsync-sidecar.yaml`).toBeDefined();
  return found as K8sObject;
}

const podSpec = (): NonNullable<NonNullable<K8sObject['spec']>['template']>['spec'] => {
  const spec = k8s('Deployment').spec?.template?.spec;
  expect(spec, 'Deployment pod template').toBeDefined();
  return spec as NonNullable<NonNullable<K8sObject['spec']>['template']>['spec'];
};

function container(name: string): Container {
  const found = podSpec().containers.find((c) => c.name === name);
  expect(found, `container ${name}`).toBeDefined();
  return found as Container;
}

/** The name of the Secret memsync reads, and the command the manifest gives to create it. */
const SECRET_NAME = 'memsync';
const createSecretCommand = (/kubectl create secret generic (\S+)((?:[^\n]*\\\n#)*[^\n]*)/.exec(k8sText) ?? []).slice(1);

/** The keys the documented `kubectl create secret` command gives the Secret. */
function documentedSecretKeys(): string[] {
  const [name, args] = createSecretCommand;
  expect(name, 'the manifest says how to create the Secret').toBe(SECRET_NAME);
  return [...(args ?? '').matchAll(/--from-(?:file|literal)=([A-Za-z0-9._-]+)=/g)].map((m) => m[1] as string);
}

/** A stand-in for a value the operator puts into the Secret (the manifest ships none). */
function secretValue(secretName: string, key: string): string {
  expect(secretName, 'memsync and the service read one Secret').toBe(SECRET_NAME);
  expect(documentedSecretKeys(), `the documented Secret has ${key}`).toContain(key);
  return key === 'api-token' ? randomBytes(32).toString('hex') : `stand-in-${key}`;
}

/** The Secret key behind a file path inside a mounted secret volume. */
function secretFileValue(filePath: string, c: Container): string {
  const mount = (c.volumeMounts ?? []).find((m) => filePath.startsWith(`${m.mountPath}/`));
  expect(mount, `${filePath} lies in a volume mounted into ${c.name}`).toBeDefined();
  const volume = (podSpec().volumes ?? []).find((v) => v.name === mount?.name);
  expect(volume?.secret, `${mount?.name} is a secret volume`).toBeDefined();
  const relative = path.posix.relative(mount?.mountPath as string, filePath);
  const items = volume?.secret?.items;
  const key = items === undefined ? relative : items.find((item) => item.path === relative)?.key;
  expect(key, `${relative} is an item of the secret volume`).toBeDefined();
  return secretValue(volume?.secret?.secretName as string, key as string);
}

async function k8sMemsyncConfig(): Promise<Config> {
  const c = container(MEMSYNC);
  const env: Record<string, string> = {};
  for (const variable of c.env ?? []) {
    if (variable.valueFrom?.secretKeyRef !== undefined) {
      env[variable.name] = secretValue(variable.valueFrom.secretKeyRef.name, variable.valueFrom.secretKeyRef.key);
    } else {
      expect(typeof variable.value, `${variable.name}: Kubernetes takes strings only`).toBe('string');
      env[variable.name] = variable.value as string;
    }
    if (variable.name.endsWith('_FILE')) {
      const file = path.join(scratch, `k8s-${variable.name}`);
      await writeFile(file, secretFileValue(env[variable.name] as string, c));
      env[variable.name] = file;
    }
  }
  return loadConfig(env);
}

function portNumber(c: Container, port: number | string | undefined): number | undefined {
  if (typeof port === 'number') return port;
  return c.ports?.find((p) => p.name === port)?.containerPort;
}

describe('deploy/kubernetes/memsync-sidecar.yaml', () => {
  it('sets on memsync only variables memsync knows, and shows every one it knows', () => {
    for (const variable of container(MEMSYNC).env ?? []) expect(KNOWN_VARIABLES, `memsync env ${variable.name}`).toContain(variable.name);
    expectShowsEveryVariable(k8sText, 'memsync-sidecar.yaml');
  });

  it('gives memsync an environment, Secret files included, that passes its validation', async () => {
    const config = await k8sMemsyncConfig();
    expect(config.enabled).toBe(true);
    expect(config.s3.credentials).toBeDefined();
    // The kubelet probes the pod IP: memsync must listen beyond loopback, which needs a token.
    expect(config.http.host).toBe('0.0.0.0');
    expect(config.http.apiToken).toBeDefined();
    expect(new URL(config.memoryService?.url ?? '').hostname).toBe('127.0.0.1');
  });

  it('probes memsync\'s own health on its port: startup and liveness /healthz, readiness without the store', async () => {
    const config = await k8sMemsyncConfig();
    const c = container(MEMSYNC);
    expect(c.ports?.map((p) => p.containerPort)).toContain(config.http.port);
    expect(c.startupProbe?.httpGet?.path).toBe('/healthz');
    expect(c.livenessProbe?.httpGet?.path).toBe('/healthz');
    // A sidecar's readiness is the pod's: the store's health must not take the service out of its Service.
    expect(c.readinessProbe?.httpGet?.path).toBe('/readyz?exclude=remote');
    for (const probe of [c.startupProbe, c.livenessProbe, c.readinessProbe]) expect(portNumber(c, probe?.httpGet?.port)).toBe(config.http.port);
    // A start reads the state and digest cache before it listens: give it a minute or more.
    expect((c.startupProbe?.periodSeconds ?? 10) * (c.startupProbe?.failureThreshold ?? 3)).toBeGreaterThanOrEqual(60);
  });

  it('applies no Secret: it is created out of band, with every key the pod reads', () => {
    expect(k8sObjects.filter((o) => o.kind === 'Secret'), 'Secrets in memsync-sidecar.yaml').toEqual([]);
    const read = new Set<string>();
    for (const v of podSpec().volumes ?? []) {
      if (v.secret === undefined) continue;
      expect(v.secret.secretName).toBe(SECRET_NAME);
      for (const item of v.secret.items ?? []) read.add(item.key);
    }
    for (const c of podSpec().containers) {
      for (const e of c.env ?? []) if (e.valueFrom?.secretKeyRef !== undefined) read.add(e.valueFrom.secretKeyRef.key);
    }
    expect(read.size).toBeGreaterThan(0);
    expect(documentedSecretKeys().sort()).toEqual([...read].sort());
  });

  it('mounts one claim read-write at the backup directory in both containers', async () => {
    const config = await k8sMemsyncConfig();
    const memsyncMount = container(MEMSYNC).volumeMounts?.find((m) => m.mountPath === config.backupDir);
    expect(memsyncMount, `memsync mounts ${config.backupDir}`).toBeDefined();
    const serviceMount = container(MEMORY_SERVICE).volumeMounts?.find((m) => m.name === memsyncMount?.name);
    expect(serviceMount).toEqual(memsyncMount);
    expect(memsyncMount?.readOnly ?? false).toBe(false);
    const volume = podSpec().volumes?.find((v) => v.name === memsyncMount?.name);
    expect(volume?.persistentVolumeClaim, 'the backup volume is a claim').toBeDefined();
    k8s('PersistentVolumeClaim', volume?.persistentVolumeClaim?.claimName);
    const dataDir = container(MEMORY_SERVICE).env?.find((e) => e.name === 'DATA_DIR')?.value;
    expect(path.posix.join(String(dataDir), SERVICE_BACKUP_SUBDIR)).toBe(config.backupDir);

    const stateMount = container(MEMSYNC).volumeMounts?.find((m) => m.mountPath === config.stateDir);
    expect(stateMount, `memsync mounts its state directory ${config.stateDir}`).toBeDefined();
    for (const v of podSpec().volumes ?? []) {
      if (v.persistentVolumeClaim !== undefined) k8s('PersistentVolumeClaim', v.persistentVolumeClaim.claimName);
    }
  });

  it('replaces the pod rather than rolling it while it holds ReadWriteOnce claims', () => {
    const claims = (podSpec().volumes ?? []).flatMap((v) => (v.persistentVolumeClaim === undefined ? [] : [v.persistentVolumeClaim.claimName]));
    const rwo = claims.filter((name) => k8s('PersistentVolumeClaim', name).spec?.accessModes?.includes('ReadWriteOnce'));
    if (rwo.length > 0) expect(k8s('Deployment').spec?.strategy?.type).toBe('Recreate');
  });

  it('runs both containers as non-root, with resources, on pinned images', () => {
    const pod = podSpec();
    for (const c of pod.containers) {
      const nonRoot = c.securityContext?.runAsNonRoot ?? pod.securityContext?.runAsNonRoot;
      expect(nonRoot, `${c.name} runAsNonRoot`).toBe(true);
      expect(c.securityContext?.runAsUser ?? pod.securityContext?.runAsUser, `${c.name} runAsUser`).not.toBe(0);
      expect(c.resources?.requests?.cpu, `${c.name} cpu request`).toBeDefined();
      expect(c.resources?.requests?.memory, `${c.name} memory request`).toBeDefined();
      expect(c.resources?.limits?.memory, `${c.name} memory limit`).toBeDefined();
      expectPinned(c.image, c.name);
    }
    expect(pod.containers.map((c) => c.name).sort()).toEqual([MEMORY_SERVICE, MEMSYNC].sort());
  });
});
