//! The terminal front end: app state, screens, and the terminal loop.
//!
//! The flow is event -> action -> state update -> draw, as in ratatui's templates and gitui:
//! [`app::App`] is a plain struct that takes keys and daemon replies and answers with
//! [`app::Effect`]s (requests to send, quit, redraw); it does no I/O, so every behaviour is
//! unit-tested. [`ui::draw`] renders an `App` without I/O. [`run`] is the only part that
//! touches the terminal and the control socket. The TUI reaches the daemon only through
//! `crate::control`: it never opens the store.

pub mod app;
pub mod component;
pub mod paging;
pub mod run;
pub mod screens;
pub mod text;
pub mod theme;
pub mod ui;

#[cfg(test)]
mod tests;

pub use app::{App, Effect, Incoming, Purpose};
pub use run::{run, TuiError};
pub use theme::Theme;
