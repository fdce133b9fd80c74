# Conveniences only: every recipe is a plain command you can run without just.

# The complete test suite (what CI runs).
test:
    bash scripts/test.sh

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Benchmarks; results go into docs/performance.md.
bench:
    cargo bench --workspace

# Exactly what CI runs.
ci:
    bash .ci/run
