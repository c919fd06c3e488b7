//! `icsync sandbox`: a faithful local implementation of the Instant Compliance customer API
//! (what stripe-mock is to Stripe), for demos, customers' integration tests and our own.
//!
//! It owns the HTTP server, the in-memory organisations, the idempotency memory, the fault
//! injection, the admin API and the optional state file. Every contract rule (validation,
//! fingerprint, Idempotency-Key syntax, upsert matching, error bodies) comes from
//! [`crate::contract`]; this module depends on nothing else of ours and restates none of it.
//!
//! Behaviour the contract leaves to the server, as implemented here:
//! - Unknown routes answer `404 not_found`; a known path with a wrong method answers `405`
//!   with an `Allow` header and an `invalid_request` error body. A request hyper cannot parse
//!   (a NUL or DEL byte in a header) gets `400` with an `invalid_request` body too.
//! - Faults apply to the two public endpoints (`/v1/...`), never to the admin API. The
//!   fail-rate answers `503 unavailable` before anything else happens; the drop-rate is rolled
//!   once a request is fully executed (and its success stored under its key), and closes the
//!   connection with no response whatever the outcome was.
//! - The rate limit counts every authenticated public request of an organisation in a fixed
//!   one-second window; a refusal is `429 rate_limited` with `Retry-After: 1`.
//! - Without an Idempotency-Key a request simply executes; expired keys are purged on every
//!   request.
//! - The admin API answers only its bearer token; anything else gets the unknown-route 404.
//!
//! Submodules: [`config`] (flags, secrets), [`state`] (the locked shared state),
//! [`orgs`] (one organisation's customers and indexes), [`idempotency`] (key memory and
//! expiry queue), [`rate_limit`], [`persist`] (state file), [`http`] (response helpers),
//! [`routes`] (public API and router), [`admin`] (admin API), [`server`] (accept loop,
//! dropped connections, shutdown, saver), [`wire`] (hyper's own parse-error answers
//! rewritten as JSON error bodies).

pub mod admin;
pub mod config;
pub mod http;
pub mod idempotency;
pub mod orgs;
pub mod persist;
pub mod rate_limit;
pub mod routes;
pub mod server;
pub mod state;
pub mod wire;

use std::io::Write;
use std::path::PathBuf;

use color_eyre::eyre::{Result, WrapErr};

pub use config::{Faults, OrgSpec, SandboxConfig, Secret};
pub use server::{serve, ConnectionDrop, SandboxError, SandboxServer};

/// `icsync sandbox` flags.
#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// Address to listen on (port 0 picks a free port; the real address is printed).
    #[arg(
        long,
        value_name = "ADDR",
        env = "ICSYNC_SANDBOX_LISTEN",
        default_value = "127.0.0.1:7878"
    )]
    pub listen: String,
    /// An organisation and its API key; repeatable. Without any: org `demo`, key `ic_test_demo`.
    #[arg(long = "org", value_name = "NAME=KEY", value_parser = secret_arg)]
    pub orgs: Vec<Secret>,
    /// Enables the admin API under /_sandbox/, for requests bearing this token.
    #[arg(long, value_name = "TOKEN", value_parser = secret_arg)]
    pub admin_token: Option<Secret>,
    /// Fraction of public requests answered 503 before anything is executed.
    #[arg(long, value_name = "F", default_value_t = 0.0, value_parser = config::parse_rate)]
    pub fail_rate: f64,
    /// Fraction of public requests executed, then answered by closing the connection.
    #[arg(long, value_name = "F", default_value_t = 0.0, value_parser = config::parse_rate)]
    pub drop_rate: f64,
    /// Delay added to every public request, in milliseconds.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub latency_ms: u64,
    /// Requests per second per organisation (0 = no limit).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub rate_limit: u32,
    /// Keep customers, stored idempotent responses and the clock in this file across restarts.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
}

/// Keys and tokens are taken as opaque secrets here and checked afterwards, so clap's
/// "invalid value" message, which repeats the raw value, can never print one.
fn secret_arg(s: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret::new(s))
}

impl SandboxArgs {
    pub fn to_config(&self) -> Result<SandboxConfig, config::ConfigError> {
        let orgs = self
            .orgs
            .iter()
            .map(|raw| config::parse_org(raw.expose()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut config = SandboxConfig::new(orgs)?;
        config.admin_token = self
            .admin_token
            .as_ref()
            .map(|t| config::parse_admin_token(t.expose()))
            .transpose()?;
        config.faults = Faults {
            fail_rate: self.fail_rate,
            drop_rate: self.drop_rate,
            latency_ms: self.latency_ms,
            rate_limit: self.rate_limit,
        };
        config.state_file = self.state.clone();
        Ok(config)
    }
}

/// Runs `icsync sandbox` until SIGINT or SIGTERM.
pub fn run_cli(args: SandboxArgs) -> Result<()> {
    let config = args.to_config()?;
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(crate::cli::error::stderr_colour())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .try_init();
    let runtime = tokio::runtime::Runtime::new().wrap_err("cannot start the async runtime")?;
    runtime.block_on(async {
        let uses_demo_org = args.orgs.is_empty();
        let server = SandboxServer::open(config)?;
        // Handlers are installed before the address is printed: a supervisor may signal as
        // soon as it reads that line, and must get a clean shutdown, not the default kill.
        let shutdown = shutdown_signal()?;
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .wrap_err_with(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener
            .local_addr()
            .wrap_err("cannot read the bound address")?;
        let mut out = std::io::stdout().lock();
        if uses_demo_org {
            writeln!(
                out,
                "no --org given: organisation {} with API key {}",
                config::DEMO_ORG,
                config::DEMO_KEY
            )?;
        }
        writeln!(out, "listening on http://{addr}")?;
        out.flush()?;
        drop(out);
        server.run(listener, shutdown).await?;
        Ok(())
    })
}

/// Completes on the first SIGINT or SIGTERM. The handlers are registered when this returns.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt =
            signal(SignalKind::interrupt()).wrap_err("cannot install the SIGINT handler")?;
        let mut terminate =
            signal(SignalKind::terminate()).wrap_err("cannot install the SIGTERM handler")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
