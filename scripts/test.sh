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
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    printf '\n==> failed (exit %s); service diagnostics\n' "$rc"
    bash scripts/seaweedfs.sh diagnose 2>&1 || true
    df -h . /tmp 2>&1 || true
  fi
  bash scripts/seaweedfs.sh stop >/dev/null 2>&1 || true
  bash scripts/openbao.sh stop >/dev/null 2>&1 || true
  bash scripts/moto.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

# No incremental compilation: it only pays off for repeated edits, and its
# caches would add several GiB to a one-off build's target directory on a
# disk that SeaweedFS's test data shares.
export CARGO_INCREMENTAL=0

# The build (~10 GiB of target/), SeaweedFS's data and the 1 GiB tests'
# files share one disk: say how much there is, so that a run that fills it
# is understood at a glance.
step "free disk space"
df -h . "${TMPDIR:-/tmp}" 2>&1 || true

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
# The `fips` crypto provider's build (AWS-LC's FIPS 140-3 module,
# aws-lc-fips-sys) needs cmake and Go (Debian's golang-go is new enough); a
# build without it needs neither.
if ! command -v cmake >/dev/null || ! command -v go >/dev/null; then
  apt-get install -y -qq cmake golang-go >/dev/null \
    || { apt-get update -qq && apt-get install -y -qq cmake golang-go >/dev/null; }
fi

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

step "cargo doc (deny warnings: no broken intra-doc links)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

step "cargo test (workspace)"
# Tests that need a service fail instead of skipping when it is missing.
export ENCSTORE_REQUIRE_SERVICES=1
cargo test --workspace

step "encstore with feature aws-kms (envelope keys and master keys in AWS KMS, on moto)"
cargo test -p encstore --features aws-kms --test kms_envelope --test open_kek

step "encstore-tink with feature tink-rust (TinkRustAead adapter)"
cargo clippy -p encstore-tink --all-targets --all-features -- -D warnings
cargo test -p encstore-tink --features tink-rust

step "interop: Google's Tink reads what encstore wrote"
bash tests/interop/reverse.sh "$ROOT/target/debug/encstore"

# The other crypto providers: the AEAD, keyset, streaming, envelope and
# interop tests of encstore-tink (Python Tink vectors, tink-rust, Wycheproof)
# and the EncryptedStorage tests, under each. The two I/O-bound 1 GiB
# tests and the constant-memory child are left to the default run above
# (they measure transfers and memory, not the cipher).
STORAGE_TESTS=(--test encrypted_storage --test large_objects -- --skip 1gib --skip large_value_in_constant_memory)

step "crypto provider aws-lc-rs (plain AWS-LC)"
cargo clippy -p encstore-tink --all-targets --no-default-features --features aws-lc-rs -- -D warnings
cargo test -p encstore-tink --no-default-features --features aws-lc-rs
# encstore builds encstore-tink with ring too: the variable picks aws-lc-rs.
ENCSTORE_CRYPTO_PROVIDER=aws-lc-rs cargo test -p encstore --features aws-lc-rs "${STORAGE_TESTS[@]}"

step "crypto provider fips (AWS-LC FIPS 140-3 module)"
cargo clippy -p encstore-tink --all-targets --features fips -- -D warnings
cargo test -p encstore-tink --features fips
cargo test -p encstore --features fips "${STORAGE_TESTS[@]}"
# The fips encstore: reports FIPS mode, refuses non-approved key types, and
# what it writes Google's Tink reads (this rebuilds target/debug/encstore).
cargo test -p encstore-cli --features fips --test cli_providers
bash tests/interop/reverse.sh "$ROOT/target/debug/encstore"

if [ -f scripts/fuzz-smoke.sh ]; then
  step "fuzz smoke run"
  bash scripts/fuzz-smoke.sh
fi

step "all tests passed"
