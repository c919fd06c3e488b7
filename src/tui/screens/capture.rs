//! The capture / edit form: every contract field, the type selector and the five risk
//! pre-answers. It validates as you type by running the contract's own `parse_input` on the
//! body it would send, so its messages are exactly the API's. "Saved" is shown only when the
//! daemon answers `queued`, which it does after the record is flushed to disk.
//!
//! The form's input survives leaving the screen; quitting or replacing it asks first.

use std::collections::{BTreeMap, BTreeSet};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;
use serde_json::{Map, Value};

use crate::contract::{parse_input, CustomerType, FieldError};
use crate::control::{ControlError, Queued};
use crate::store::{Record, RecordId};
use crate::tui::component::{help_only, hint, Action, Component, Ctx, KeyHint, Save};
use crate::tui::theme::Theme;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FieldId {
    Type,
    FullName,
    Email,
    ExternalId,
    TradingName,
    Phone,
    Occupation,
    SourceOfFunds,
    Country,
    Volume,
    IsPep,
}

impl FieldId {
    pub const ALL: [FieldId; 11] = [
        FieldId::Type,
        FieldId::FullName,
        FieldId::Email,
        FieldId::ExternalId,
        FieldId::TradingName,
        FieldId::Phone,
        FieldId::Occupation,
        FieldId::SourceOfFunds,
        FieldId::Country,
        FieldId::Volume,
        FieldId::IsPep,
    ];

    /// The member's path as the contract names it in its field errors.
    pub fn path(self) -> &'static str {
        match self {
            FieldId::Type => "type",
            FieldId::FullName => "full_name",
            FieldId::Email => "email",
            FieldId::ExternalId => "external_id",
            FieldId::TradingName => "trading_name",
            FieldId::Phone => "phone",
            FieldId::Occupation => "risk.occupation",
            FieldId::SourceOfFunds => "risk.source_of_funds",
            FieldId::Country => "risk.country_of_residence",
            FieldId::Volume => "risk.expected_monthly_volume",
            FieldId::IsPep => "risk.is_pep",
        }
    }

    fn label(self) -> &'static str {
        match self {
            FieldId::Type => "type",
            FieldId::FullName => "full name (required)",
            FieldId::Email => "email",
            FieldId::ExternalId => "external id",
            FieldId::TradingName => "trading name",
            FieldId::Phone => "phone",
            FieldId::Occupation => "risk: occupation",
            FieldId::SourceOfFunds => "risk: source of funds",
            FieldId::Country => "risk: country (GB, DE)",
            FieldId::Volume => "risk: monthly volume",
            FieldId::IsPep => "risk: politically exp.",
        }
    }

    fn is_text(self) -> bool {
        !matches!(self, FieldId::Type | FieldId::IsPep)
    }

    fn risk_key(self) -> Option<&'static str> {
        self.path().strip_prefix("risk.")
    }
}

/// What the fields hold, as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values {
    pub customer_type: CustomerType,
    pub text: BTreeMap<FieldId, String>,
    pub is_pep: Option<bool>,
}

impl Values {
    fn from_record(r: &Record) -> Values {
        let map = r.payload.as_map();
        let mut v = Values {
            customer_type: map
                .get("type")
                .and_then(Value::as_str)
                .and_then(CustomerType::parse)
                .unwrap_or_default(),
            ..Values::default()
        };
        for f in FieldId::ALL {
            let member = match f.risk_key() {
                Some(k) => map.get("risk").and_then(|r| r.get(k)),
                None => map.get(f.path()),
            };
            match (f, member) {
                (FieldId::IsPep, Some(Value::Bool(b))) => v.is_pep = Some(*b),
                (_, Some(Value::String(s))) => {
                    v.text.insert(f, s.clone());
                }
                (_, Some(Value::Number(n))) => {
                    v.text.insert(f, n.to_string());
                }
                _ => {}
            }
        }
        v
    }

    fn text(&self, f: FieldId) -> &str {
        self.text.get(&f).map_or("", String::as_str)
    }

    /// A member's JSON, or none when the field is empty.
    fn json(&self, f: FieldId) -> Option<Value> {
        match f {
            FieldId::Type => Some(Value::from(self.customer_type.as_str())),
            FieldId::IsPep => self.is_pep.map(Value::from),
            FieldId::Volume => {
                let s = self.text(f).trim();
                // Anything but a whole number goes as typed, so the contract names the error.
                (!s.is_empty()).then(|| s.parse::<u64>().map_or(Value::from(s), Value::from))
            }
            _ => {
                let s = self.text(f);
                (!s.trim().is_empty()).then(|| Value::from(s))
            }
        }
    }

    /// The request body: empty fields left out.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        let mut risk = Map::new();
        for f in FieldId::ALL {
            if let Some(v) = self.json(f) {
                match f.risk_key() {
                    Some(k) => risk.insert(k.into(), v),
                    None => body.insert(f.path().into(), v),
                };
            }
        }
        if !risk.is_empty() {
            body.insert("risk".into(), Value::Object(risk));
        }
        Value::Object(body)
    }

    /// The members that differ from `before`: a cleared field is sent as `null`, risk keys
    /// one by one (the daemon merges them).
    pub fn changes_from(&self, before: &Values) -> Value {
        let mut changes = Map::new();
        let mut risk = Map::new();
        for f in FieldId::ALL {
            let now = self.json(f);
            if now == before.json(f) {
                continue;
            }
            let v = now.unwrap_or(Value::Null);
            match f.risk_key() {
                Some(k) => risk.insert(k.into(), v),
                None => changes.insert(f.path().into(), v),
            };
        }
        if !risk.is_empty() {
            changes.insert("risk".into(), Value::Object(risk));
        }
        Value::Object(changes)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    New,
    Edit { id: RecordId, revision: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormStatus {
    Editing,
    Saving { generation: u64 },
    Saved { id: RecordId, revision: u32 },
    Invalid,
    Failed { message: String },
    NothingChanged,
}

#[derive(Debug, Clone)]
pub struct CaptureForm {
    pub mode: Mode,
    pub values: Values,
    baseline: Values,
    /// Index into [`FieldId::ALL`]; one past the end is the Save button.
    focus: usize,
    touched: BTreeSet<FieldId>,
    show_all: bool,
    server_errors: Vec<FieldError>,
    pub status: FormStatus,
}

const SAVE: usize = FieldId::ALL.len();

impl Default for CaptureForm {
    fn default() -> Self {
        Self::new()
    }
}

impl CaptureForm {
    pub fn new() -> Self {
        CaptureForm {
            mode: Mode::New,
            values: Values::default(),
            baseline: Values::default(),
            focus: 1,
            touched: BTreeSet::new(),
            show_all: false,
            server_errors: Vec::new(),
            status: FormStatus::Editing,
        }
    }

    pub fn edit(record: &Record) -> Self {
        let values = Values::from_record(record);
        CaptureForm {
            mode: Mode::Edit {
                id: record.id,
                revision: record.revision,
            },
            baseline: values.clone(),
            values,
            ..Self::new()
        }
    }

    pub fn focused(&self) -> Option<FieldId> {
        FieldId::ALL.get(self.focus).copied()
    }

    pub fn editing(&self) -> Option<RecordId> {
        match self.mode {
            Mode::Edit { id, .. } => Some(id),
            Mode::New => None,
        }
    }

    /// Input that the daemon has not confirmed as saved.
    pub fn has_unsaved(&self) -> bool {
        self.values != self.baseline
    }

    /// The contract's verdict on the body as it stands, plus what the daemon refused.
    pub fn errors(&self) -> Vec<FieldError> {
        let mut errors = parse_input(&self.values.body()).err().unwrap_or_default();
        for e in &self.server_errors {
            if !errors.contains(e) {
                errors.push(e.clone());
            }
        }
        errors
    }

    /// The messages to show next to a field: once it was typed in, or after a save attempt.
    pub fn field_errors(&self, f: FieldId) -> Vec<String> {
        if !self.show_all && !self.touched.contains(&f) {
            return Vec::new();
        }
        self.errors()
            .into_iter()
            .filter(|e| e.field == f.path())
            .map(|e| e.message)
            .collect()
    }

    /// Errors that belong to no single field (such as an unknown member).
    fn other_errors(&self) -> Vec<FieldError> {
        if !self.show_all {
            return Vec::new();
        }
        self.errors()
            .into_iter()
            .filter(|e| !FieldId::ALL.iter().any(|f| f.path() == e.field))
            .collect()
    }

    pub fn saving(&mut self, generation: u64) {
        self.status = FormStatus::Saving { generation };
    }

    /// The daemon confirmed a save. Returns false for a reply to an older save.
    pub fn saved(&mut self, generation: u64, q: Queued) -> bool {
        if self.status != (FormStatus::Saving { generation }) {
            return false;
        }
        match self.mode {
            Mode::New => {
                *self = CaptureForm::new();
            }
            Mode::Edit { .. } => {
                self.mode = Mode::Edit {
                    id: q.id,
                    revision: q.revision,
                };
                self.baseline = self.values.clone();
            }
        }
        self.status = FormStatus::Saved {
            id: q.id,
            revision: q.revision,
        };
        true
    }

    pub fn failed(&mut self, generation: u64, e: &ControlError) {
        if self.status != (FormStatus::Saving { generation }) {
            return;
        }
        self.server_errors = e.invalid.clone();
        self.show_all = true;
        self.status = FormStatus::Failed {
            message: e.message.clone(),
        };
    }

    fn try_save(&mut self) -> Action {
        if matches!(self.status, FormStatus::Saving { .. }) {
            return Action::Handled;
        }
        let errors = self.errors();
        if !errors.is_empty() {
            self.show_all = true;
            self.status = FormStatus::Invalid;
            if let Some(i) = FieldId::ALL
                .iter()
                .position(|f| errors.iter().any(|e| e.field == f.path()))
            {
                self.focus = i;
            }
            return Action::Handled;
        }
        match self.mode {
            Mode::New => Action::Save(Save::New {
                body: self.values.body(),
            }),
            Mode::Edit { id, .. } => {
                let changes = self.values.changes_from(&self.baseline);
                if changes.as_object().is_some_and(Map::is_empty) {
                    self.status = FormStatus::NothingChanged;
                    Action::Handled
                } else {
                    Action::Save(Save::Edit { id, changes })
                }
            }
        }
    }

    fn changed(&mut self, f: FieldId) {
        self.touched.insert(f);
        self.server_errors.clear();
        if !matches!(self.status, FormStatus::Saving { .. }) {
            self.status = FormStatus::Editing;
        }
    }

    fn choose(&mut self, f: FieldId, forward: bool) {
        match f {
            FieldId::Type => {
                self.values.customer_type = match self.values.customer_type {
                    CustomerType::Individual => CustomerType::SoleTrader,
                    CustomerType::SoleTrader => CustomerType::Individual,
                }
            }
            FieldId::IsPep => {
                let order = [None, Some(false), Some(true)];
                let i = order
                    .iter()
                    .position(|v| *v == self.values.is_pep)
                    .unwrap_or(0);
                let step = if forward { 1 } else { order.len() - 1 };
                self.values.is_pep = order[(i + step) % order.len()];
            }
            _ => return,
        }
        self.changed(f);
    }
}

impl Component for CaptureForm {
    fn hints(&self) -> Vec<KeyHint> {
        vec![
            hint("Tab/↓", "next"),
            hint("Ctrl+S", "save"),
            hint("Esc", "back (input kept)"),
            hint("Ctrl+C", "quit"),
            help_only("S-Tab/↑", "previous field"),
            help_only("Enter", "next field; on Save: save"),
            help_only("←/→/Space", "choose type or PEP answer"),
            help_only("Ctrl+U", "clear the field"),
            help_only("Ctrl+D", "throw the unsaved input away"),
            help_only("F1", "this help"),
        ]
    }

    fn captures_text(&self) -> bool {
        true
    }

    fn handle_key(&mut self, key: KeyEvent) -> Action {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let field = self.focused();
        match key.code {
            KeyCode::Esc => return Action::Back,
            KeyCode::Tab | KeyCode::Down => self.focus = (self.focus + 1).min(SAVE),
            KeyCode::BackTab | KeyCode::Up => self.focus = self.focus.saturating_sub(1),
            KeyCode::Enter if self.focus == SAVE => return self.try_save(),
            KeyCode::Enter => self.focus += 1,
            KeyCode::Char('s') if ctrl => return self.try_save(),
            KeyCode::Char('d') if ctrl => {
                return if self.has_unsaved() {
                    Action::DiscardDraft
                } else {
                    Action::Handled
                }
            }
            KeyCode::Char('u') if ctrl => {
                if let Some(f) = field.filter(|f| f.is_text()) {
                    self.values.text.remove(&f);
                    self.changed(f);
                }
            }
            KeyCode::Left | KeyCode::Right | KeyCode::Char(' ')
                if field.is_some_and(|f| !f.is_text()) =>
            {
                if let Some(f) = field {
                    self.choose(f, key.code != KeyCode::Left);
                }
            }
            KeyCode::Char(c) if !ctrl => {
                if let Some(f) = field.filter(|f| f.is_text()) {
                    self.values.text.entry(f).or_default().push(c);
                    self.changed(f);
                }
            }
            KeyCode::Backspace => {
                if let Some(f) = field.filter(|f| f.is_text()) {
                    if let Some(s) = self.values.text.get_mut(&f) {
                        s.pop();
                    }
                    self.changed(f);
                }
            }
            _ => return Action::Unhandled,
        }
        Action::Handled
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Ctx) {
        let t = ctx.theme;
        let title = match &self.mode {
            Mode::New => " New customer ".to_string(),
            Mode::Edit { id, revision } => format!(" Edit {id} (revision {revision}) "),
        };
        let mut lines = vec![status_line(&self.status, t)];
        for e in self.other_errors() {
            lines.push(Line::from(Span::styled(
                format!("  {} {}", e.field, e.message),
                t.error(),
            )));
        }
        let mut focus_line = 0;
        for (i, f) in FieldId::ALL.into_iter().enumerate() {
            let focused = i == self.focus;
            if focused {
                focus_line = lines.len();
            }
            let marker = if focused { "›" } else { " " };
            let mut spans = vec![Span::styled(
                format!("{marker} {:<23}", f.label()),
                if focused { t.key() } else { t.dim() },
            )];
            spans.extend(self.value_spans(f, focused, t));
            lines.push(Line::from(spans));
            // Messages are wrapped by hand to stay indented under the value.
            let room = (area.width as usize).saturating_sub(2 + 28).max(20);
            for message in self.field_errors(f) {
                for (n, part) in wrap_words(&message, room).into_iter().enumerate() {
                    let arrow = if n == 0 { "↳ " } else { "  " };
                    lines.push(Line::from(Span::styled(
                        format!("{:26}{arrow}{part}", ""),
                        t.error(),
                    )));
                }
            }
        }
        let save = Span::styled(
            "[ Save ]",
            if self.focus == SAVE {
                t.selected()
            } else {
                t.key()
            },
        );
        if self.focus == SAVE {
            focus_line = lines.len();
        }
        lines.push(Line::from(vec![Span::raw(format!("{:26}", "")), save]));
        // Keep the focused line in view on short terminals.
        let inner = area.height.saturating_sub(2) as usize;
        let scroll = (focus_line + 2).saturating_sub(inner) as u16;
        frame.render_widget(
            Paragraph::new(lines)
                .scroll((scroll, 0))
                .block(Block::bordered().title(title)),
            area,
        );
    }
}

impl CaptureForm {
    fn value_spans<'a>(&self, f: FieldId, focused: bool, t: &Theme) -> Vec<Span<'a>> {
        let choice = |label: &'a str, on: bool| {
            let style = if on { t.selected() } else { t.dim() };
            vec![Span::styled(format!(" {label} "), style), Span::raw(" ")]
        };
        match f {
            FieldId::Type => CustomerType::ALL
                .into_iter()
                .flat_map(|c| choice(c.as_str(), self.values.customer_type == c))
                .collect(),
            FieldId::IsPep => [
                ("unanswered", None),
                ("no", Some(false)),
                ("yes", Some(true)),
            ]
            .into_iter()
            .flat_map(|(label, v)| choice(label, self.values.is_pep == v))
            .collect(),
            _ => {
                let text = self.values.text(f).to_string();
                let cursor = if focused { "▏" } else { "" };
                vec![Span::raw(text), Span::styled(cursor, t.key())]
            }
        }
    }
}

fn status_line<'a>(status: &FormStatus, t: &Theme) -> Line<'a> {
    match status {
        FormStatus::Editing => Line::from(Span::styled(
            " Checked as you type with the API's own rules. Ctrl+S saves.",
            t.dim(),
        )),
        FormStatus::Saving { .. } => Line::from(Span::styled(
            " Saving: waiting for the daemon to write it to disk…",
            t.warn(),
        )),
        FormStatus::Saved { id, revision } => Line::from(Span::styled(
            format!(" Saved: {id} revision {revision} is queued on disk."),
            t.ok(),
        )),
        FormStatus::Invalid => Line::from(Span::styled(
            " Not saved: fix the fields marked below.",
            t.error(),
        )),
        FormStatus::Failed { message } => {
            Line::from(Span::styled(format!(" Not saved: {message}"), t.error()))
        }
        FormStatus::NothingChanged => {
            Line::from(Span::styled(" Nothing changed: nothing to save.", t.dim()))
        }
    }
}

/// Splits `text` into lines of at most `width` characters at spaces (a longer word gets a
/// line of its own).
fn wrap_words(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let fits = line.chars().count() + 1 + word.chars().count() <= width;
        if line.is_empty() || fits {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        } else {
            lines.push(std::mem::take(&mut line));
            line.push_str(word);
        }
    }
    lines.push(line);
    lines
}

#[cfg(test)]
mod tests {
    use super::wrap_words;

    #[test]
    fn wrap_words_keeps_lines_within_width() {
        let lines = wrap_words("must be digits with an optional leading +", 16);
        assert_eq!(
            lines,
            vec!["must be digits", "with an optional", "leading +"]
        );
    }
}
