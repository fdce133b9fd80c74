#!/usr/bin/env bash
# The complete test suite: what `.ci/run` runs, and what a developer runs
# before sending a change. It installs what the tests need (Python Tink as
# the interop oracle, SoftHSM2 as the PKCS#11 module, SeaweedFS as the S3
# server), starts the servers, runs the lints, every test, the reverse
# interop check and a short fuzz smoke run, and stops what it started, even
# on failure.
#
# Usage: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

step() { printf '\n==> %s\n' "$*"; }

cleanup() {
  if [ -f scripts/seaweedfs.sh ]; then bash scripts/seaweedfs.sh stop >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

step "installing test dependencies"
python3 -m pip install --quiet --disable-pip-version-check 'tink==1.16.1' cryptography
bash scripts/softhsm.sh install
if [ -f scripts/seaweedfs.sh ]; then
  step "starting SeaweedFS (S3 on 127.0.0.1)"
  eval "$(bash scripts/seaweedfs.sh start)"
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (deny warnings)"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test (workspace)"
# Tests that need a service fail instead of skipping when it is missing.
export ENCSTORE_REQUIRE_SERVICES=1
cargo test --workspace

step "encstore-tink with feature tink-rust (TinkRustAead adapter)"
cargo clippy -p encstore-tink --all-targets --all-features -- -D warnings
cargo test -p encstore-tink --features tink-rust

step "interop: Google's Tink reads what encstore wrote"
bash tests/interop/reverse.sh "$ROOT/target/debug/encstore"

if [ -f scripts/fuzz-smoke.sh ]; then
  step "fuzz smoke run"
  bash scripts/fuzz-smoke.sh
fi

step "all tests passed"
