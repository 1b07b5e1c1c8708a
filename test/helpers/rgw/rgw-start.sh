#!/usr/bin/env bash
# Throw-away single-node Ceph RADOS Gateway for integration tests: 1 mon, 1 OSD, no mgr, auth none,
# every socket on 127.0.0.1. Written for the Debian 12 Ceph 16.2 (Pacific) packages; never installs them.
#
# usage: rgw-start.sh STATE_DIR          (STATE_DIR must not exist; stop with rgw-stop.sh STATE_DIR)
# env:   RGW_PORT=7480   S3 endpoint port
#        MON_PORT=3300   mon msgr2 port; msgr1 takes MON_PORT+1; the OSD picks its own from 6800 up
#        OBJECTSTORE=memstore   objects in the OSD's RAM; bluestore = a sparse file STATE_DIR/osd/ceph-0/block
#        MEMSTORE_BYTES=4G / BLUESTORE_BYTES=20G   capacity the OSD reports
#        ACCESS_KEY / SECRET_KEY   S3 credentials of the user to create
#        OWNER_PID   if set, a watchdog stops the cluster once that process is gone (a test runner killed hard)
# stdout (only this): S3_ENDPOINT=..., S3_REGION=..., S3_ACCESS_KEY=..., S3_SECRET_KEY=..., CEPH_VERSION=..., RGW_LOG=...
set -euo pipefail

D=${1:?usage: rgw-start.sh STATE_DIR}
RGW_PORT=${RGW_PORT:-7480}
MON_PORT=${MON_PORT:-3300}
OBJECTSTORE=${OBJECTSTORE:-memstore}
MEMSTORE_BYTES=${MEMSTORE_BYTES:-4G}
BLUESTORE_BYTES=${BLUESTORE_BYTES:-20G}
ACCESS_KEY=${ACCESS_KEY:-testaccesskey}
SECRET_KEY=${SECRET_KEY:-testsecretkey}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
C=$D/ceph.conf
T0=$SECONDS
log() { echo "[rgw-start +$((SECONDS - T0))s] $*" >&2; }
die() { echo "[rgw-start] $*" >&2; exit 1; }
# exited NAME: the daemon wrote its pid file and is gone since, so waiting longer for it is pointless
exited() { local p; p=$(cat "$D/run/$1.pid" 2>/dev/null) && [ -n "$p" ] && ! kill -0 "$p" 2>/dev/null; }

case "$OBJECTSTORE" in memstore|bluestore) ;; *) die "OBJECTSTORE must be memstore or bluestore, not $OBJECTSTORE" ;; esac
for bin in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool uuidgen curl timeout setsid; do
  command -v "$bin" >/dev/null || die "$bin not found on PATH (install ceph-mon ceph-osd radosgw ceph-common uuid-runtime curl)"
done
[ -e "$D" ] && die "refusing: $D exists (run rgw-stop.sh $D first)"
for p in "$RGW_PORT" "$MON_PORT" "$((MON_PORT + 1))"; do   # a busy RGW port would make the readiness probe lie
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then die "port $p on 127.0.0.1 is already in use"; fi
done

mkdir -p "$D"/{mon,osd,run,log,crash,rgw}
on_exit() {
  local rc=$?
  [ $rc = 0 ] && return
  # The daemon logs go with the state dir, so show their ends before the cleanup deletes them.
  for f in "$D"/log/*.log; do [ -s "$f" ] && { echo "--- tail $f" >&2; tail -n 25 "$f" >&2; }; done
  log "start failed (exit $rc): stopping what was started"
  "$HERE/rgw-stop.sh" "$D" >&2 || true
}
trap on_exit EXIT
trap 'exit 130' INT TERM   # turn signals into an exit so the EXIT trap cleans up

: >"$D/keyring"
FSID=$(uuidgen)
MON_ADDR="[v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$((MON_PORT + 1))]"
cat >"$C" <<CONF
[global]
fsid = $FSID
mon host = $MON_ADDR
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
# daemons (radosgw) default to 'secure' only for mon connections, which auth none cannot offer: radosgw hangs
ms mon client mode = crc secure
keyring = $D/keyring
run dir = $D/run
pid file = $D/run/\$name.pid
log file = $D/log/\$name.log
crash dir = $D/crash
# a single OSD can only hold one replica
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
# a nearly full /tmp must not stop a test cluster
mon data avail warn = 1
mon data avail crit = 0
mon osd full ratio = .99
mon osd nearfull ratio = .99
mon osd backfillfull ratio = .99
osd failsafe full ratio = .99

[mon]
mon data = $D/mon/\$cluster-\$id
mon cluster log file = $D/log/cluster.log
admin socket = $D/run/\$name.asok

[osd]
osd data = $D/osd/\$cluster-\$id
osd objectstore = $OBJECTSTORE
memstore device bytes = $MEMSTORE_BYTES
bluestore block create = true
bluestore block size = $BLUESTORE_BYTES
bluestore block db create = false
bluestore block wal create = false
osd memory target = 1073741824
osd check max object name len on startup = false
admin socket = $D/run/\$name.asok

[client.rgw.local]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw data = $D/rgw
admin socket = $D/run/\$name.asok
# memstore frees deleted/overwritten objects only after gc: 2 min instead of the default 2 h
rgw gc obj min wait = 120
rgw gc processor period = 120
# SSE-KMS with keys from this file instead of a KMS (test only); plain HTTP allowed for it.
# The key id is the one tests ask for (test/integration/sse-kms.test.ts); the key is a fixed 256-bit test value.
rgw crypt s3 kms backend = testing
rgw crypt s3 kms encryption keys = memsync-test-key=yVyHHvIG8rG2PNCDtxeaeJxYW6BKYioK/upFO88xh90=
rgw crypt require ssl = false
CONF

# Every command that talks to the cluster is under timeout: a misconfigured client waits forever for a mon.
log "mon: mkfs + start on 127.0.0.1:$MON_PORT"
monmaptool --create --fsid "$FSID" --addv a "$MON_ADDR" "$D/monmap" >/dev/null
timeout 30 ceph-mon -c "$C" --mkfs -i a --monmap "$D/monmap" >>"$D/log/mon-stderr.log" 2>&1
# Daemons get files, not our stdout/stderr: they would hold the caller's pipes open after we exit.
timeout 30 ceph-mon -c "$C" -i a >>"$D/log/mon-stderr.log" 2>&1

OSD_UUID=$(uuidgen)
OSD_ID=$(timeout 60 ceph -c "$C" --connect-timeout 30 osd new "$OSD_UUID" 2>>"$D/log/ceph-cli.log")
mkdir -p "$D/osd/ceph-$OSD_ID"
log "osd.$OSD_ID: mkfs ($OBJECTSTORE) + start"
timeout 60 ceph-osd -c "$C" -i "$OSD_ID" --mkfs --osd-uuid "$OSD_UUID" >>"$D/log/osd-stderr.log" 2>&1
timeout 60 ceph-osd -c "$C" -i "$OSD_ID" >>"$D/log/osd-stderr.log" 2>&1   # daemonizes; writes run/osd.N.pid
up=0
for _ in $(seq 1 120); do
  if timeout 10 ceph -c "$C" --connect-timeout 5 osd dump 2>>"$D/log/ceph-cli.log" | grep -q "^osd.$OSD_ID up"; then up=1; break; fi
  exited "osd.$OSD_ID" && break
  sleep 0.5
done
[ $up = 1 ] || die "osd.$OSD_ID did not come up (log tails follow)"

log "radosgw: start on 127.0.0.1:$RGW_PORT"
timeout 60 radosgw -c "$C" -n client.rgw.local >>"$D/log/rgw-stderr.log" 2>&1   # daemonizes
ok=0
for _ in $(seq 1 240); do   # it creates its pools on first start (~8 s)
  if curl -s -m 2 -o /dev/null "http://127.0.0.1:$RGW_PORT/"; then ok=1; break; fi
  exited client.rgw.local && break
  sleep 0.5
done
[ $ok = 1 ] || die "radosgw exited or is not answering on 127.0.0.1:$RGW_PORT (log tails follow)"

# No -n client.rgw...: radosgw-admin would then try to bind the gateway's admin socket.
timeout 60 radosgw-admin -c "$C" user create --uid=test --display-name="test user" \
  --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >"$D/user.json" 2>>"$D/log/radosgw-admin.log"

if [ -n "${OWNER_PID:-}" ]; then
  setsid bash -c 'while kill -0 "$1" 2>/dev/null && [ -d "$2/run" ]; do sleep 2; done
                  [ -d "$2/run" ] && exec "$3/rgw-stop.sh" "$2"' watchdog "$OWNER_PID" "$D" "$HERE" \
    </dev/null >>"$D/log/watchdog.log" 2>&1 &
fi

VERSION=$(radosgw --version | awk '{print $3}')
log "ready (Ceph $VERSION, $OBJECTSTORE)"
cat >"$D/env" <<ENV
S3_ENDPOINT=http://127.0.0.1:$RGW_PORT
S3_REGION=us-east-1
S3_ACCESS_KEY=$ACCESS_KEY
S3_SECRET_KEY=$SECRET_KEY
CEPH_VERSION=$VERSION
RGW_LOG=$D/log/client.rgw.local.log
ENV
cat "$D/env"
