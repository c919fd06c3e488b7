//! Tests of the TUI without a terminal: key handling and state (app.rs), and every screen
//! rendered to ratatui's TestBackend and compared with insta snapshots.

mod app_keys;
mod existing_pane;
pub(crate) mod fixtures;
mod snapshots;
