//! The daemon's control socket: the protocol (pure), its server and its client. The CLI and
//! the TUI reach a running daemon only through this module; what each request does is decided
//! by the [`server::Handler`] the daemon plugs in.

pub mod client;
pub mod limits;
pub mod protocol;
pub mod server;

pub use client::{other_release, Client, ClientError};
pub use limits::Limits;
pub use protocol::*;
pub use server::{bind, serve, serve_with, BindError, Handler};
