#!/usr/bin/env bash
# The complete test suite: what `.ci/run` runs, and what a developer runs
# before sending a change. It installs what the tests need (Python Tink as
# the interop oracle, SoftHSM2 as the PKCS#11 module, SeaweedFS as the S3
# server, OpenBao as the Vault transit server, moto as the AWS KMS emulator,
# a FUSE FAT filesystem for the case-folding test), starts the servers, runs
# the lints, every test, the reverse interop check and a short fuzz smoke
# run, and stops what it started, even on failure.
#
# Usage: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

step() { printf '\n==> %s\n' "$*"; }

cleanup() {
  bash scripts/seaweedfs.sh stop >/dev/null 2>&1 || true
  bash scripts/openbao.sh stop >/dev/null 2>&1 || true
  bash scripts/moto.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

step "installing test dependencies"
python3 -m pip install --quiet --disable-pip-version-check \
  'tink[hcvault,awskms]==1.16.1' cryptography hvac boto3
bash scripts/softhsm.sh install
# A real case-folding filesystem (FAT through FUSE) for encstore-fs's test.
if ! command -v fusefat >/dev/null || ! command -v mkfs.vfat >/dev/null; then
  apt-get install -y -qq dosfstools fusefat fuse3 >/dev/null \
    || { apt-get update -qq && apt-get install -y -qq dosfstools fusefat fuse3 >/dev/null; }
fi
export ENCSTORE_REQUIRE_FUSEFAT=1

step "starting SeaweedFS (S3 on 127.0.0.1)"
eval "$(bash scripts/seaweedfs.sh start)"
step "starting OpenBao (Vault transit over TLS on 127.0.0.1)"
eval "$(bash scripts/openbao.sh start)"
step "starting moto (AWS KMS emulator, signatures checked, on 127.0.0.1)"
eval "$(bash scripts/moto.sh start)"

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
