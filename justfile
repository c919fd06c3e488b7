# Recipes for the same commands the README gives; `just` is optional.

# The demo: sandbox, daemon, sample files and the TUI; quitting stops everything.
demo:
    cargo run --release -- demo

# Run the test suite.
test:
    cargo test

# Run the whole CI: fmt, clippy, tests, schemathesis against the sandbox.
ci:
    bash .ci/run

# Run the local API sandbox (extra flags pass through: just sandbox --listen 127.0.0.1:0).
sandbox *FLAGS:
    cargo run --release -- sandbox {{FLAGS}}

# The benchmarks: one table, written into docs/benchmarks.md (takes several minutes; needs
# tmux). BENCH_QUICK=1 for a smoke run; `cargo bench --bench pure` for the criterion ones.
bench:
    cargo bench --bench e2e
