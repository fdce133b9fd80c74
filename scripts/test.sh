#!/usr/bin/env bash
# The complete test suite: what `.ci/run` runs, and what a developer runs
# before sending a change. It installs what the tests need (Python Tink as
# the interop oracle), runs the lints, the whole workspace's tests, the
# reverse interop check, and stops anything it started.
#
# Usage: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "installing test dependencies"
python3 -m pip install --quiet --disable-pip-version-check 'tink==1.16.1'

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (deny warnings)"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test (workspace)"
# The services' tests must never be skipped here.
export ENCSTORE_REQUIRE_SERVICES=1
cargo test --workspace

if [ -x tests/interop/reverse.sh ] || [ -f tests/interop/reverse.sh ]; then
  step "interop: Google's Tink reads what encstore wrote"
  bash tests/interop/reverse.sh
fi

step "all tests passed"
