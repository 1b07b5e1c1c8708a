#!/usr/bin/env bash
# Stop the daemons rgw-start.sh started in STATE_DIR, by the PIDs in their pid files, then delete STATE_DIR.
# usage: rgw-stop.sh STATE_DIR     env: KEEP=1 keeps the dir (to read the logs), SIG=KILL skips the polite stop
set -u
D=${1:?usage: rgw-stop.sh STATE_DIR}
[ -d "$D/run" ] || { echo "[rgw-stop] no $D/run: nothing to stop" >&2; exit 0; }
stopped=()

# A pid file can outlive its daemon and the PID be reused: only signal a Ceph daemon that runs on this dir's config.
ours() {
  local p=$1
  grep -qxE 'radosgw|ceph-osd|ceph-mon' "/proc/$p/comm" 2>/dev/null &&
    tr '\0' '\n' <"/proc/$p/cmdline" 2>/dev/null | grep -qxF "$D/ceph.conf"
}

stop() {   # stop PIDFILE...: SIGTERM, wait up to 10 s, then SIGKILL
  local f p pids=() alive
  for f in "$@"; do
    [ -f "$f" ] || continue
    p=$(cat "$f" 2>/dev/null) || continue
    [[ "$p" =~ ^[0-9]+$ ]] && ours "$p" || continue
    kill "-${SIG:-TERM}" "$p" 2>/dev/null && pids+=("$p")
  done
  [ ${#pids[@]} = 0 ] && return
  for _ in $(seq 1 50); do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.2
  done
  for p in "${pids[@]}"; do
    kill -0 "$p" 2>/dev/null && { echo "[rgw-stop] SIGKILL $p" >&2; kill -KILL "$p" 2>/dev/null; }
  done
  stopped+=("${pids[@]}")
}

# One at a time: radosgw needs the OSD to shut down cleanly, and the OSD waits up to 5 s for the mon's ack.
stop "$D"/run/client.rgw.*.pid
stop "$D"/run/osd.*.pid
stop "$D"/run/mon.*.pid
[ "${KEEP:-0}" = 1 ] || rm -rf "$D"
echo "[rgw-stop] stopped pids: ${stopped[*]:-none}" >&2
