#!/usr/bin/env bash
# moto's AWS emulator as a local KMS for encstore-awskms's tests.
#
#   bash scripts/moto.sh start   # install if needed, start, create users and keys
#   bash scripts/moto.sh env     # print the export lines again
#   bash scripts/moto.sh stop    # stop it and remove its state
#   eval "$(bash scripts/moto.sh start)"   # start and export the variables
#
# moto is an EMULATOR, not AWS KMS. It is started with SigV4 signature
# checking on: INITIAL_NO_AUTH_ACTION_COUNT lets the setup's first IAM calls
# through unsigned (create two IAM users and an access key each); every later
# request must be signed with a known access key and the right secret, or it
# gets 403. Known differences from AWS KMS: moto encrypts and decrypts with
# a disabled key, answers auth failures with an XML body, and answers a
# ciphertext of another key with AccessDeniedException.
#
# It creates:
#   - IAM user encstore (kms:* allowed) and its access key;
#   - IAM user encstore-denied (no policy) and its access key;
#   - a symmetric KMS key with alias alias/encstore-test.
# Everything lives in memory: stopping the server loses every key.
#
# stdout carries only `export` lines (ENCSTORE_AWSKMS_*). No AWS_* variable
# is exported, so it cannot clash with scripts/seaweedfs.sh's credentials;
# to point encstore at it, set AWS_ENDPOINT_URL_KMS, AWS_ACCESS_KEY_ID and
# AWS_SECRET_ACCESS_KEY from them. `start` is idempotent. Progress on stderr.
#
# Environment (all optional):
#   ENCSTORE_MOTO_DIR    state directory (default /tmp/encstore-moto)
#   ENCSTORE_MOTO_PORT   port (default 15000)
set -euo pipefail

DIR="${ENCSTORE_MOTO_DIR:-/tmp/encstore-moto}"
PORT="${ENCSTORE_MOTO_PORT:-15000}"
PIDFILE="$DIR/moto.pid"
ENVFILE="$DIR/env"
LOG="$DIR/moto.log"
REGION="us-east-1"
# Pinned: the tests were written against this release's behaviour.
MOTO_VERSION="5.2.1"
# The unsigned setup calls: create-user x2, put-user-policy, create-access-key x2.
NO_AUTH_ACTIONS=5

log() { printf 'moto: %s\n' "$*" >&2; }

running() {
  [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

install_moto() {
  if python3 -c "import moto, boto3, sys; sys.exit(0 if moto.__version__ == '$MOTO_VERSION' else 1)" 2>/dev/null &&
    python3 -c "import flask, flask_cors" 2>/dev/null; then
    return
  fi
  log "installing moto[server]==$MOTO_VERSION from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" boto3 >&2
}

# moto's own dashboard endpoint: answers without counting as an AWS action.
ready() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$PORT/moto-api/data.json" 2>/dev/null | grep -q '^200$'
}

# Whether the credentials in the env file still work (a KMS call signed with them).
healthy() {
  python3 - "$ENVFILE" <<'PY' >/dev/null 2>&1
import sys, boto3
env = dict(l.split(" ", 1)[1].strip().split("=", 1) for l in open(sys.argv[1]) if l.startswith("export "))
kms = boto3.client("kms", endpoint_url=env["ENCSTORE_AWSKMS_ENDPOINT"], region_name=env["ENCSTORE_AWSKMS_REGION"],
                   aws_access_key_id=env["ENCSTORE_AWSKMS_ACCESS_KEY_ID"], aws_secret_access_key=env["ENCSTORE_AWSKMS_SECRET_ACCESS_KEY"])
kms.describe_key(KeyId=env["ENCSTORE_AWSKMS_KEY_URI"][len("aws-kms://"):])
PY
}

print_env() {
  cat "$ENVFILE"
}

start() {
  if running && [ -f "$ENVFILE" ] && healthy; then
    log "already running (pid $(cat "$PIDFILE"))"
    print_env
    return 0
  fi
  if running; then
    log "a previous server is not answering; restarting it"
    stop_quietly
  fi
  install_moto
  rm -rf "$DIR"
  mkdir -p "$DIR"
  chmod 700 "$DIR"
  log "starting moto_server on 127.0.0.1:$PORT (signature checking after $NO_AUTH_ACTIONS setup calls)"
  local moto_server
  moto_server="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/moto_server"
  [ -x "$moto_server" ] || moto_server="moto_server"
  INITIAL_NO_AUTH_ACTION_COUNT=$NO_AUTH_ACTIONS setsid "$moto_server" -H 127.0.0.1 -p "$PORT" \
    </dev/null >"$LOG" 2>&1 &
  echo $! >"$PIDFILE"
  local i
  for i in $(seq 1 150); do
    if ready; then break; fi
    if ! running; then
      log "moto_server exited during start-up; its log:"
      tail -n 30 "$LOG" >&2
      exit 1
    fi
    sleep 0.2
  done
  if ! ready; then
    log "moto did not answer within 30 s; its log:"
    tail -n 30 "$LOG" >&2
    stop_quietly
    exit 1
  fi
  # The setup: exactly NO_AUTH_ACTIONS unsigned IAM calls, then signed KMS
  # calls with the new user's key, then a check that a wrong secret is refused.
  umask 077
  python3 - "http://127.0.0.1:$PORT" "$REGION" >"$ENVFILE" <<'PY'
import json, sys
import boto3, botocore
ep, region = sys.argv[1], sys.argv[2]
iam = boto3.client("iam", endpoint_url=ep, region_name=region,
                   aws_access_key_id="setup", aws_secret_access_key="setup")
iam.create_user(UserName="encstore")
iam.put_user_policy(UserName="encstore", PolicyName="kms-all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}))
key = iam.create_access_key(UserName="encstore")["AccessKey"]
iam.create_user(UserName="encstore-denied")
denied = iam.create_access_key(UserName="encstore-denied")["AccessKey"]
kms = boto3.client("kms", endpoint_url=ep, region_name=region,
                   aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
meta = kms.create_key(Description="encstore test key")["KeyMetadata"]
kms.create_alias(AliasName="alias/encstore-test", TargetKeyId=meta["KeyId"])
alias_arn = meta["Arn"].split(":key/")[0] + ":alias/encstore-test"
bad = boto3.client("kms", endpoint_url=ep, region_name=region,
                   aws_access_key_id=key["AccessKeyId"], aws_secret_access_key="wrong-secret")
try:
    bad.describe_key(KeyId=meta["Arn"])
    sys.exit("moto accepted a wrong secret: signature checking is off")
except botocore.exceptions.ClientError as e:
    if e.response["ResponseMetadata"]["HTTPStatusCode"] != 403:
        sys.exit(f"unexpected answer to a wrong secret: {e}")
print(f"export ENCSTORE_AWSKMS_ENDPOINT={ep}")
print(f"export ENCSTORE_AWSKMS_REGION={region}")
print(f"export ENCSTORE_AWSKMS_ACCESS_KEY_ID={key['AccessKeyId']}")
print(f"export ENCSTORE_AWSKMS_SECRET_ACCESS_KEY={key['SecretAccessKey']}")
print(f"export ENCSTORE_AWSKMS_DENIED_ACCESS_KEY_ID={denied['AccessKeyId']}")
print(f"export ENCSTORE_AWSKMS_DENIED_SECRET_ACCESS_KEY={denied['SecretAccessKey']}")
print(f"export ENCSTORE_AWSKMS_KEY_URI=aws-kms://{meta['Arn']}")
print(f"export ENCSTORE_AWSKMS_ALIAS_URI=aws-kms://{alias_arn}")
PY
  log "ready (pid $(cat "$PIDFILE")) after $((i / 5)) s; IAM users and KMS key created"
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
