# syntax=docker/dockerfile:1
# memsync, the backup sidecar of the memory service. Two stages: `build` compiles the
# TypeScript with the dev dependencies; `runtime` holds only dist/ and the production
# dependencies. Build from the repository root: docker build -t memsync:0.1.0 .

FROM node:24.22.3-bookworm-slim AS build
WORKDIR /app
# Manifests first, so the dependency layer is reused until they change. No install script
# is needed to compile (and some dev dependencies' scripts would try to build native code).
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:24.22.3-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
# No production dependency has an install script, so --ignore-scripts changes nothing but safety.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist

# The backup directory is shared with the memory service, which writes it; memsync writes
# only its restore staging folders there (and restored snapshots), plus its own state
# directory. Both must be writable by the user memsync runs as: `node` (uid 1000, gid 1000)
# here, or whatever uid a deployment sets (memsync runs as any uid; run it as the memory
# service's uid so that each can remove what the other wrote). The directories below give
# named volumes mounted there that ownership on first use. The state directory defaults to
# dirname(backup dir)/.memsync-state, i.e. /data/.memsync-state, which is not a volume
# here: keep it on its own volume instead.
RUN mkdir -p /data/backups /var/lib/memsync && chown node:node /data/backups /var/lib/memsync
ENV CLOUD_SYNC_BACKUP_DIR=/data/backups \
    CLOUD_SYNC_STATE_DIR=/var/lib/memsync
USER node

# The HTTP API binds 127.0.0.1 unless CLOUD_SYNC_HOST says otherwise. To publish it, set
# CLOUD_SYNC_HOST=0.0.0.0 together with CLOUD_SYNC_API_TOKEN (memsync refuses a
# non-loopback address without a token); /healthz and /readyz stay unauthenticated.
EXPOSE 8901

# Runs inside the container, so loopback reaches the API whether it binds 127.0.0.1 or
# 0.0.0.0. The slim image has no curl: Node's own fetch does the request.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.CLOUD_SYNC_PORT||8901)+'/healthz',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# Graceful stop: on SIGTERM memsync stops watching, lets in-flight uploads finish for
# CLOUD_SYNC_SHUTDOWN_TIMEOUT_MS (default 5000), aborts the rest (at most ~3.5 s more),
# saves its state and exits 0: within Docker's default 10 s grace period (docker stop -t,
# compose stop_grace_period, Kubernetes terminationGracePeriodSeconds: 30). Raise the grace
# period with the timeout. node runs as PID 1 and handles SIGTERM itself, so no init is needed.
STOPSIGNAL SIGTERM
# --max-semi-space-size caps V8's young generation (MiB per semi-space), where nearly all of
# memsync's allocations die: without it, V8 sizes it from the host's RAM, and peak RSS with it.
# The same value as src/main.ts's shebang and `npm start` (test/unit/young-generation-cap.test.ts).
# A flag on node's command line wins over NODE_OPTIONS: change it with --entrypoint or command:.
ENTRYPOINT ["node", "--max-semi-space-size=4", "dist/main.js"]
