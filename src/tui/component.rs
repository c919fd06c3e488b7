//! The small interface every screen implements (gitui's components): draw, handle a key,
//! and list its key hints. The `?` help overlay is generated from the hints, so it cannot
//! go stale. A screen answers a key with an [`Action`]; the app turns actions into state
//! changes and effects.

use chrono::{DateTime, Utc};
use crossterm::event::KeyEvent;
use ratatui::layout::Rect;
use ratatui::Frame;
use serde_json::Value;

use super::app::{Connection, Outgoing};
use super::theme::Theme;
use crate::contract::ErrorKind;
use crate::control::{ResolveAction, StatusReport};
use crate::store::{Record, RecordId, RecordState};

/// One line of the help: the keys and what they do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyHint {
    pub keys: &'static str,
    pub what: &'static str,
    /// The longer text the help shows, when the footer's word is not enough.
    pub detail: Option<&'static str>,
    /// Shown in the one-line footer as well as in the help.
    pub footer: bool,
}

pub const fn hint(keys: &'static str, what: &'static str) -> KeyHint {
    KeyHint {
        keys,
        what,
        detail: None,
        footer: true,
    }
}

/// A footer hint with a fuller explanation in the help.
pub const fn hint_long(keys: &'static str, what: &'static str, detail: &'static str) -> KeyHint {
    KeyHint {
        keys,
        what,
        detail: Some(detail),
        footer: true,
    }
}

/// A hint listed only in the `?` help, to keep the footer readable at 80 columns.
pub const fn help_only(keys: &'static str, what: &'static str) -> KeyHint {
    KeyHint {
        keys,
        what,
        detail: None,
        footer: false,
    }
}

/// The hints while typing a `/` search in a record list (queue and conflicts alike).
pub fn search_hints() -> Vec<KeyHint> {
    vec![
        hint("type", "name, email or external id"),
        hint("Enter", "search all records"),
        hint("Esc", "clear"),
    ]
}

/// What a form asks to save.
#[derive(Debug, Clone, PartialEq)]
pub enum Save {
    New { body: Value },
    Edit { id: RecordId, changes: Value },
}

/// What a screen asks the app to do after a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Not the screen's key: the app tries its global keys.
    Unhandled,
    /// The screen changed its own state.
    Handled,
    Send(Outgoing),
    Open(RecordId),
    Back,
    /// Show the refused rows of dropped files.
    ShowRefused,
    Edit(Box<Record>),
    Resolve {
        ids: Vec<RecordId>,
        action: ResolveAction,
    },
    ResolveMany {
        state: RecordState,
        error_type: Option<ErrorKind>,
        action: ResolveAction,
    },
    Save(Save),
    /// Throw the form's unsaved input away (asks first).
    DiscardDraft,
}

/// What every screen may read while drawing.
pub struct Ctx<'a> {
    pub theme: &'a Theme,
    pub now: DateTime<Utc>,
    pub status: Option<&'a StatusReport>,
    pub connection: &'a Connection,
}

pub trait Component {
    fn hints(&self) -> Vec<KeyHint>;
    fn handle_key(&mut self, key: KeyEvent) -> Action;
    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Ctx);
    /// Whether printable keys are text for this screen right now (a form field or a search
    /// prompt), so `q`, `?` and `/` are typed rather than acted on.
    fn captures_text(&self) -> bool {
        false
    }
}
