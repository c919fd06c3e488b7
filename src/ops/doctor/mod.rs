//! `icsync doctor`: one screen of checks, each ok / info / warn / fail with what to do, so
//! that support can ask a user to run one command and read the answer out. Facts are
//! gathered once (`facts`, the only part doing I/O), judged by pure rules (`judge`), and
//! printed as text or JSON (`report`). It changes nothing: no directory, keyring or key file
//! is created, and the store is only opened when no daemon holds it.

pub mod facts;
pub mod judge;
pub mod report;

use std::path::Path;

use crate::config::Overrides;

pub use facts::{gather, Facts};
pub use judge::{exit_code, judge, Check, Status};

/// Runs every check and prints the result; returns the process exit status (0 when nothing
/// failed, 1 otherwise).
pub async fn run(
    config: Option<&Path>,
    flags: Overrides,
    json: bool,
    out: &mut impl std::io::Write,
) -> std::io::Result<u8> {
    let facts = gather(config, flags).await;
    let checks = judge(&facts);
    if json {
        report::write_json(&checks, out)?;
    } else {
        report::write_text(&checks, crate::ops::VERSION, out)?;
    }
    Ok(exit_code(&checks))
}
