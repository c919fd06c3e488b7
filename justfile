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

# Install icsync for this user: the binary (cargo install --locked), shell completions for
# bash, zsh and fish, and the man pages (icsync.1 and one per command), each where the shell
# and man look by default.
install:
    cargo install --locked --path .
    mkdir -p "${XDG_DATA_HOME:-$HOME/.local/share}/bash-completion/completions" \
        "${XDG_DATA_HOME:-$HOME/.local/share}/zsh/site-functions" \
        "${XDG_CONFIG_HOME:-$HOME/.config}/fish/completions" \
        "${XDG_DATA_HOME:-$HOME/.local/share}/man/man1"
    icsync completions bash > "${XDG_DATA_HOME:-$HOME/.local/share}/bash-completion/completions/icsync"
    icsync completions zsh > "${XDG_DATA_HOME:-$HOME/.local/share}/zsh/site-functions/_icsync"
    icsync completions fish > "${XDG_CONFIG_HOME:-$HOME/.config}/fish/completions/icsync.fish"
    icsync man --out-dir "${XDG_DATA_HOME:-$HOME/.local/share}/man/man1"
    @echo "installed $(icsync --version); next: icsync doctor, then icsync service install"

# The benchmarks: one table, written into docs/benchmarks.md (takes several minutes; needs
# tmux). BENCH_QUICK=1 for a smoke run; `cargo bench --bench pure` for the criterion ones.
bench:
    cargo bench --bench e2e
