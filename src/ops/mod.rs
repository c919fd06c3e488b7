//! Installing and operating icsync: the service definitions (`unit`, pure) and their
//! installation (`service`), `doctor`, free-space measurement (`disk`) and the version string.
//! It reads settings, the store and the control socket the way any client does, through
//! their own modules, and writes only the service unit file: never the store, a keyring or a
//! key file.

pub mod disk;
pub mod doctor;
pub mod service;
pub mod unit;

/// `0.1.0 (commit abc1234)`: the commit comes from build.rs ("unknown" outside git).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("ICSYNC_GIT_COMMIT"),
    ")"
);
