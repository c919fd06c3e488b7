//! One file per screen, each a [`Component`](super::component::Component) owning its state,
//! plus the help, confirm and unlock overlays. Helpers shared by several screens live here.

pub mod capture;
pub mod confirm;
pub mod conflicts;
pub mod dashboard;
pub mod detail;
pub mod help;
pub mod queue;
pub mod refused;
pub mod unlock;

use chrono::{DateTime, Utc};
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};

use crate::store::{Record, RecordError};

/// A timestamp as shown in tables: UTC, to the second.
pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// "12s ago", "5m ago", "3h ago", "2d ago".
pub fn ago(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let s = (now - then).num_seconds().max(0);
    match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86400 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86400),
    }
}

/// A record's last error in one line, or "" when it has none.
pub fn error_line(r: &Record) -> String {
    match &r.last_error {
        Some(RecordError::Api { error }) => format!("{}: {}", error.kind(), error.message()),
        Some(e @ RecordError::Transport { .. }) => e.to_string(),
        None => String::new(),
    }
}

/// The widths a bordered table `table_width` columns wide gives its columns (one space
/// between them), so each cell can be cut to its column with an ellipsis.
pub fn column_widths(table_width: u16, constraints: &[Constraint]) -> Vec<u16> {
    let inner = Rect::new(0, 0, table_width.saturating_sub(2), 1);
    Layout::horizontal(constraints)
        .spacing(1)
        .split(inner)
        .iter()
        .map(|r| r.width)
        .collect()
}

/// A box of at most `width` x `height` centred in `area`.
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let [row] = Layout::vertical([Constraint::Length(height.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [cell] = Layout::horizontal([Constraint::Length(width.min(area.width))])
        .flex(Flex::Center)
        .areas(row);
    cell
}

/// An enum as the API and the protocol spell it (`INTEGRATION`, `adopt_existing`).
pub fn wire_name<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// ` head value` in lines of `width` columns: `head` takes `column` characters (cut with an
/// ellipsis if longer) and the value wraps under itself, a hanging indent, so a long value
/// never runs back under its label.
pub fn hanging<'a>(
    head: &str,
    value: &str,
    column: usize,
    width: usize,
    styles: (Style, Style),
) -> Vec<Line<'a>> {
    let indent = column + 2;
    crate::tui::text::wrap(value, width.saturating_sub(indent))
        .into_iter()
        .enumerate()
        .map(|(i, part)| {
            let h = if i == 0 { head } else { "" };
            Line::from(vec![
                Span::styled(
                    format!(" {:<column$} ", crate::tui::text::cut(h, column)),
                    styles.0,
                ),
                Span::styled(part, styles.1),
            ])
        })
        .collect()
}
