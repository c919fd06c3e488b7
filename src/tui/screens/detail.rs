//! One record in full: its payload, where it stands, the server's customer when known
//! (id, kyc_status, added_via, verified identity), its history of attempts and actions
//! (time, key, status, latency, error), and the operator actions that apply to it. For a
//! `customer_conflict`, the existing customer in brief (name, how many fields differ, its KYC
//! state), or that it is not read yet.

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table};
use ratatui::Frame;
use serde_json::Value;

use super::conflicts::action_hint;
use super::{column_widths, error_line, time, wire_name};
use crate::contract::compare_with_customer;
use crate::control::{Request, ResolveAction};
use crate::store::{HistoryEntry, Record, RecordId, RecordState};
use crate::tui::app::{Outgoing, Purpose};
use crate::tui::component::{help_only, hint, Action, Component, Ctx, KeyHint};
use crate::tui::text::cut;
use crate::tui::theme::Theme;

#[derive(Debug, Clone, Default)]
pub struct DetailView {
    id: Option<RecordId>,
    record: Option<Record>,
    scroll: usize,
}

/// The payload's members in the contract's order, with their labels.
pub const PAYLOAD_FIELDS: [(&str, &str); 11] = [
    ("type", "type"),
    ("full_name", "full name"),
    ("email", "email"),
    ("external_id", "external id"),
    ("trading_name", "trading name"),
    ("phone", "phone"),
    ("risk.occupation", "occupation"),
    ("risk.source_of_funds", "source of funds"),
    ("risk.country_of_residence", "country"),
    ("risk.expected_monthly_volume", "monthly volume"),
    ("risk.is_pep", "PEP"),
];

/// A payload member as text: "-" when absent or null.
pub fn member(record: &Record, path: &str) -> String {
    let map = record.payload.as_map();
    let value = match path.split_once('.') {
        Some((outer, inner)) => map.get(outer).and_then(|v| v.get(inner)),
        None => map.get(path),
    };
    match value {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(true)) => "yes".into(),
        Some(Value::Bool(false)) => "no".into(),
        Some(v) => v.to_string(),
    }
}

pub fn payload_lines<'a>(record: &Record, theme: &Theme) -> Vec<Line<'a>> {
    PAYLOAD_FIELDS
        .iter()
        .map(|(path, label)| {
            Line::from(vec![
                Span::styled(format!(" {label:<16}"), theme.dim()),
                Span::raw(member(record, path)),
            ])
        })
        .collect()
}

/// [`payload_lines`] for a pane `width` columns wide: a value too long for it wraps under
/// itself (an email is never cut here: this is where the full value is shown).
fn wrapped_payload_lines<'a>(record: &Record, theme: &Theme, width: usize) -> Vec<Line<'a>> {
    PAYLOAD_FIELDS
        .iter()
        .flat_map(|(path, label)| {
            super::hanging(
                label,
                &member(record, path),
                15,
                width,
                (theme.dim(), Style::default()),
            )
        })
        .collect()
}

impl DetailView {
    pub fn id(&self) -> Option<RecordId> {
        self.id
    }

    pub fn record(&self) -> Option<&Record> {
        self.record.as_ref()
    }

    pub fn open(&mut self, id: RecordId) -> Outgoing {
        if self.id != Some(id) {
            self.record = None;
            self.scroll = 0;
        }
        self.id = Some(id);
        show(id)
    }

    pub fn reload(&self) -> Option<Outgoing> {
        self.id.map(show)
    }

    pub fn loaded(&mut self, id: RecordId, record: Record) {
        if self.id == Some(id) {
            self.record = Some(record);
        }
    }

    fn resolve(&self, action: ResolveAction) -> Action {
        match &self.record {
            Some(r) => Action::Resolve {
                ids: vec![r.id],
                action,
            },
            None => Action::Handled,
        }
    }
}

fn show(id: RecordId) -> Outgoing {
    Outgoing {
        purpose: Purpose::Detail { id },
        request: Request::Show { id: id.to_string() },
    }
}

impl Component for DetailView {
    fn hints(&self) -> Vec<KeyHint> {
        let mut hints = vec![hint("Esc", "back"), hint("e", "edit")];
        let state = self.record.as_ref().map(|r| r.state);
        if matches!(state, Some(s) if s.needs_person()) {
            hints.push(action_hint(ResolveAction::Retry));
        }
        // The two actions about the existing customer: only for a customer_conflict.
        if state == Some(RecordState::Conflict)
            && self.record.as_ref().is_some_and(|r| r.conflict().is_some())
        {
            hints.push(action_hint(ResolveAction::UpdateExisting));
            hints.push(action_hint(ResolveAction::LinkExisting));
        }
        hints.push(action_hint(ResolveAction::Discard));
        hints.push(help_only("j/k", "scroll the history"));
        hints
    }

    fn handle_key(&mut self, key: KeyEvent) -> Action {
        match key.code {
            KeyCode::Down | KeyCode::Char('j') => {
                let len = self.record.as_ref().map_or(0, |r| r.history.len());
                self.scroll = (self.scroll + 1).min(len.saturating_sub(1));
                Action::Handled
            }
            KeyCode::Up | KeyCode::Char('k') => {
                self.scroll = self.scroll.saturating_sub(1);
                Action::Handled
            }
            KeyCode::Esc => Action::Back,
            KeyCode::Char('e') => match &self.record {
                Some(r) => Action::Edit(Box::new(r.clone())),
                None => Action::Handled,
            },
            KeyCode::Char('r') => self.resolve(ResolveAction::Retry),
            KeyCode::Char('U') => self.resolve(ResolveAction::UpdateExisting),
            KeyCode::Char('L') => self.resolve(ResolveAction::LinkExisting),
            KeyCode::Char('d') => self.resolve(ResolveAction::Discard),
            _ => Action::Unhandled,
        }
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Ctx) {
        let t = ctx.theme;
        let Some(r) = &self.record else {
            let text = match self.id {
                Some(id) => format!(" loading record {id}…"),
                None => " no record selected: open one from the queue".into(),
            };
            frame.render_widget(
                Paragraph::new(Span::styled(text, t.dim())).block(Block::bordered()),
                area,
            );
            return;
        };
        // Both panes wrap long values under themselves (rather than the paragraph wrapping
        // them back under the label), and grow to show every line while the history keeps
        // four rows.
        // The payload takes two fifths of a wide screen (an email fits on one line at 120
        // columns) and never less than 36 columns.
        let payload_width = (area.width * 2 / 5).max(36);
        let [left, right] =
            Layout::horizontal([Constraint::Length(payload_width), Constraint::Min(0)])
                .areas(Rect { height: 1, ..area });
        let payload = wrapped_payload_lines(r, t, left.width.saturating_sub(2) as usize);
        let status = status_lines(r, t, right.width.saturating_sub(2) as usize);
        let wanted = payload.len().max(status.len()) as u16 + 2;
        let height = wanted.max(13).min(area.height.saturating_sub(4));
        let [top, bottom] =
            Layout::vertical([Constraint::Length(height), Constraint::Min(4)]).areas(area);
        let [left, right] =
            Layout::horizontal([Constraint::Length(payload_width), Constraint::Min(0)]).areas(top);
        frame.render_widget(
            Paragraph::new(payload)
                .block(Block::bordered().title(format!(" Payload (revision {}) ", r.revision))),
            left,
        );
        frame.render_widget(
            Paragraph::new(status).block(Block::bordered().title(format!(" {} ", r.id))),
            right,
        );
        draw_history(frame, bottom, r, self.scroll, t);
    }
}

/// A labelled value wrapped to `width` columns with a hanging indent: its continuation lines
/// start under the value, not under the label.
fn labelled<'a>(name: &str, value: &str, style: Style, t: &Theme, width: usize) -> Vec<Line<'a>> {
    super::hanging(name, value, 8, width, (t.dim(), style))
}

fn status_lines<'a>(r: &Record, t: &Theme, width: usize) -> Vec<Line<'a>> {
    let label = |name: &str, value: String| labelled(name, &value, Style::default(), t, width);
    let mut lines = vec![Line::from(vec![
        Span::styled(format!(" {:<9}", "state"), t.dim()),
        Span::styled(r.state.as_str(), t.state(r.state)),
        Span::raw(match r.synced_revision {
            Some(n) => format!(" (server has rev {n})"),
            None => " (never synced)".into(),
        }),
    ])];
    lines.extend(label("origin", r.origin.to_string()));
    lines.extend(label("updated", format!("{} UTC", time(r.updated_at))));
    if let Some(at) = r.next_attempt_at {
        lines.extend(label(
            "next try",
            format!("{} UTC, {} failed", time(at), r.failures),
        ));
    }
    if r.last_error.is_some() {
        lines.extend(labelled("error", &error_line(r), t.error(), t, width));
    }
    match &r.remote {
        Some(c) => {
            // The id on a line of its own: 36 characters do not fit beside a label at 80x24.
            lines.extend(label("customer", String::new()));
            lines.push(Line::raw(format!("  {}", c.id)));
            lines.extend(label(
                "kyc",
                format!(
                    "{} · added via {}",
                    c.kyc_status.as_str(),
                    wire_name(&c.added_via)
                ),
            ));
            lines.extend(label(
                "verified",
                match &c.verified_identity {
                    Some(v) => format!("{}, born {}, {}", v.full_name, v.birth_year, v.country),
                    None => "-".into(),
                },
            ));
        }
        None if r.conflict().is_some() => lines.extend(existing_lines(r, t, width)),
        None => lines.extend(label("customer", "not on the server yet".into())),
    }
    lines
}

/// A `customer_conflict`'s existing customer in brief; the conflicts screen (3) shows it
/// field by field.
fn existing_lines<'a>(r: &Record, t: &Theme, width: usize) -> Vec<Line<'a>> {
    let label = |name: &str, value: String| labelled(name, &value, Style::default(), t, width);
    let Some(existing) = &r.existing else {
        return label("existing", "not fetched yet (offline?)".into());
    };
    let Some(customer) = existing.customer() else {
        return label("existing", "not found on the server (404): deleted?".into());
    };
    let differ = compare_with_customer(&r.payload.input(), customer)
        .iter()
        .filter(|c| c.differs)
        .count();
    let mut lines = label(
        "existing",
        format!("{} · {differ} ≠ (see 3)", customer.full_name),
    );
    lines.extend(label(
        "kyc",
        format!(
            "{} · added via {}",
            customer.kyc_status.as_str(),
            customer.added_via.as_str()
        ),
    ));
    lines
}

fn draw_history(frame: &mut Frame, area: Rect, r: &Record, scroll: usize, t: &Theme) {
    let widths = [
        Constraint::Length(19),
        Constraint::Length(3),
        Constraint::Fill(2),
        Constraint::Length(6),
        Constraint::Length(8),
        Constraint::Fill(3),
    ];
    // Every cell is cut to the column the table lays out, with an ellipsis: a key or a file
    // name cut bare reads as another key or file.
    let columns = column_widths(area.width, &widths);
    let cell = |i: usize, s: &str| Cell::from(cut(s, usize::from(columns[i])));
    let rows = r.history.iter().rev().skip(scroll).map(|h| match h {
        HistoryEntry::Attempt(a) => {
            let mut note = a.error.clone().unwrap_or_default();
            if a.replayed {
                note = format!("replayed {note}");
            }
            let status = a.status.map_or("none".into(), |s| s.to_string());
            let style = match a.status {
                Some(200..=299) => t.ok(),
                _ => t.error(),
            };
            Row::new(vec![
                cell(0, &time(a.at)),
                cell(1, &a.revision.to_string()),
                cell(2, a.key.as_str()),
                Cell::from(Span::styled(status, style)),
                cell(4, &format!("{}ms", a.latency_ms)),
                cell(5, &note),
            ])
        }
        HistoryEntry::Action {
            at,
            action,
            revision,
            detail,
        } => Row::new(vec![
            cell(0, &time(*at)),
            cell(1, &revision.to_string()),
            Cell::from(Span::styled(
                cut(
                    &format!("action: {}", wire_name(action)),
                    usize::from(columns[2]),
                ),
                t.dim(),
            )),
            Cell::from(""),
            Cell::from(""),
            cell(5, detail.as_deref().unwrap_or_default()),
        ]),
    });
    let title = format!(" History: {} entries, newest first ", r.history.len());
    frame.render_widget(
        Table::new(rows, widths)
            .header(
                Row::new(["time (UTC)", "rev", "key", "status", "latency", "error"])
                    .style(t.title()),
            )
            .block(Block::bordered().title(title)),
        area,
    );
}
