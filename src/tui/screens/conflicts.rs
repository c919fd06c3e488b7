//! Records that need a person: 409 conflicts and rejected records, one page at a time, each
//! shown beside what collided with it. For a `customer_conflict` that is the existing
//! customer, field by field in the local payload's order, as the daemon's conflict enricher
//! read it from the server (`Record::existing`; the 409 itself names only its id):
//! `≠` marks each field the local record would change (the marker survives `NO_COLOR`; colour
//! is added when allowed), fields empty on both sides are left out, and the customer's
//! server-only facts (kyc_status, added_via) sit on the bottom border. Until the enricher
//! has read it (offline, no key yet) the pane says so; a 404 says the customer is gone.
//! Any other error shows the local payload beside why the API refused it. On a terminal too
//! short for every field, `]` and `[` scroll the comparison (back to the top for another
//! record).
//!
//! Actions apply to the marked records, or to everything matching the state and error-type
//! filter after `A` (one `resolve_many`), or else to the selected record.

use std::collections::BTreeSet;

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, TableState, Wrap};
use ratatui::Frame;

use ratatui::style::Style;
use uuid::Uuid;

use super::column_widths;
use super::detail::{payload_lines, PAYLOAD_FIELDS};
use super::queue::search_line;
use super::time;
use crate::contract::{compare_with_customer, server_only_fields, ApiError, ErrorKind, Patch};
use crate::control::ResolveAction;
use crate::store::{Record, RecordError, RecordId, RecordState};
use crate::tui::app::ListId;
use crate::tui::component::{
    help_only, hint, hint_long, search_hints, Action, Component, Ctx, KeyHint,
};
use crate::tui::paging::{error_kind, ListView, Window};
use crate::tui::text::cut;
use crate::tui::theme::Theme;

/// The error types `t` cycles through: the ones that leave a record needing a person.
const ERROR_FILTERS: [Option<ErrorKind>; 5] = [
    None,
    Some(ErrorKind::CustomerConflict),
    Some(ErrorKind::IdempotencyConflict),
    Some(ErrorKind::ValidationError),
    Some(ErrorKind::InvalidRequest),
];

#[derive(Debug, Clone)]
pub struct ConflictsView {
    pub list: ListView,
    marks: BTreeSet<RecordId>,
    mark_all: bool,
    /// How far the comparison pane is scrolled (`]` / `[`), for the record it was scrolled on.
    compare_scroll: Option<(RecordId, usize)>,
    /// Field rows the comparison pane had room for when last drawn (scrolling stops where
    /// the last field is on screen).
    compare_room: std::cell::Cell<usize>,
}

impl ConflictsView {
    pub fn new(rows: usize) -> Self {
        let filters = vec![Some(RecordState::Conflict), Some(RecordState::Rejected)];
        let window = Window::new(ListId::Conflicts, Some(RecordState::Conflict), rows);
        ConflictsView {
            list: ListView::new(window, filters),
            marks: BTreeSet::new(),
            mark_all: false,
            compare_scroll: None,
            compare_room: std::cell::Cell::new(usize::MAX),
        }
    }

    /// Table rows that fit in a body `height` rows tall: the list takes half, less its
    /// borders and header.
    pub fn rows_for(height: u16) -> usize {
        (list_height(height).saturating_sub(3)).max(1) as usize
    }

    pub fn marks(&self) -> &BTreeSet<RecordId> {
        &self.marks
    }

    pub fn marking_all(&self) -> bool {
        self.mark_all
    }

    pub fn clear_marks(&mut self) {
        self.marks.clear();
        self.mark_all = false;
    }

    fn state(&self) -> RecordState {
        self.list.window.filter().unwrap_or(RecordState::Conflict)
    }

    /// The action applied to the marks, or everything matching, or the selected record.
    fn target(&self, action: ResolveAction) -> Action {
        if self.mark_all {
            return Action::ResolveMany {
                state: self.state(),
                error_type: self.list.error_filter,
                action,
            };
        }
        let ids: Vec<RecordId> = if self.marks.is_empty() {
            self.list.selected().map(|r| r.id).into_iter().collect()
        } else {
            self.marks.iter().copied().collect()
        };
        if ids.is_empty() {
            Action::Handled
        } else {
            Action::Resolve { ids, action }
        }
    }

    /// The comparison pane's first field row for the selected record (0 after a move).
    fn compare_offset(&self) -> usize {
        match (self.compare_scroll, self.list.selected()) {
            (Some((id, offset)), Some(r)) if r.id == id => offset,
            _ => 0,
        }
    }

    /// Scrolls the comparison pane by `delta` rows, within the rows the record has.
    fn scroll_compare(&mut self, delta: isize) -> Action {
        let Some(r) = self.list.selected() else {
            return Action::Handled;
        };
        let last = max_offset(compare_rows(r).len(), self.compare_room.get());
        let offset = self.compare_offset().saturating_add_signed(delta).min(last);
        self.compare_scroll = Some((r.id, offset));
        Action::Handled
    }

    fn handle_key_inner(&mut self, key: KeyEvent) -> Action {
        if self.list.searching {
            return self.list.handle_key(key);
        }
        match key.code {
            KeyCode::Char(' ') => {
                if let Some(id) = self.list.selected().map(|r| r.id) {
                    self.mark_all = false;
                    if !self.marks.remove(&id) {
                        self.marks.insert(id);
                    }
                }
                Action::Handled
            }
            KeyCode::Char('A') => {
                self.mark_everything();
                Action::Handled
            }
            KeyCode::Char('t') => {
                let i = ERROR_FILTERS
                    .iter()
                    .position(|f| *f == self.list.error_filter)
                    .unwrap_or(0);
                self.list.error_filter = ERROR_FILTERS[(i + 1) % ERROR_FILTERS.len()];
                self.clear_marks();
                Action::Handled
            }
            KeyCode::Char('f') => {
                self.clear_marks();
                self.list.handle_key(key)
            }
            KeyCode::Char('e') => match self.list.selected() {
                Some(r) => Action::Edit(Box::new(r.clone())),
                None => Action::Handled,
            },
            KeyCode::Char(']') => self.scroll_compare(1),
            KeyCode::Char('[') => self.scroll_compare(-1),
            KeyCode::Char('U') => self.target(ResolveAction::UpdateExisting),
            KeyCode::Char('L') => self.target(ResolveAction::LinkExisting),
            KeyCode::Char('r') => self.target(ResolveAction::Retry),
            KeyCode::Char('d') => self.target(ResolveAction::Discard),
            _ => self.list.handle_key(key),
        }
    }

    fn mark_everything(&mut self) {
        if self.mark_all || self.list.search.trim().is_empty() {
            // Everything matching the state and error type, on every page: one resolve_many.
            self.mark_all = !self.mark_all;
            self.marks.clear();
        } else {
            // resolve_many cannot carry a search: mark the records shown, by id.
            let ids: Vec<RecordId> = self.list.view().iter().map(|r| r.id).collect();
            self.marks.extend(ids);
        }
    }
}

/// An action's key and short name, as the footer and this screen's pane show them.
pub fn action_key(action: ResolveAction) -> (&'static str, &'static str) {
    match action {
        ResolveAction::UpdateExisting => ("U", "update"),
        ResolveAction::LinkExisting => ("L", "link"),
        ResolveAction::Retry => ("r", "retry"),
        ResolveAction::Discard => ("d", "discard"),
    }
}

/// What an action does in at most 32 characters: the help's line for it, which at 80x24
/// shares the width with a second column. The pane says it at length
/// ([`ResolveAction::explain`]).
pub fn action_brief(action: ResolveAction) -> &'static str {
    match action {
        ResolveAction::UpdateExisting => "send fields over existing (asks)",
        ResolveAction::LinkExisting => "link to existing; send nothing",
        ResolveAction::Retry => "send it again, unchanged",
        ResolveAction::Discard => "never send it (asks first)",
    }
}

/// An action's footer hint, with its one-line explanation for the help.
pub fn action_hint(action: ResolveAction) -> KeyHint {
    let (key, name) = action_key(action);
    hint_long(key, name, action_brief(action))
}

/// The lines under a `customer_conflict`'s comparison: what the two actions that are about
/// the existing customer do, one line each.
const ACTION_LINES: [ResolveAction; 2] =
    [ResolveAction::UpdateExisting, ResolveAction::LinkExisting];

/// One line per action, in full where the pane (`width` columns, borders included) has room
/// and briefly where not (the half-width pane at 80 columns), so neither wraps.
fn action_lines<'a>(t: &Theme, width: u16) -> Vec<Line<'a>> {
    let room = usize::from(width.saturating_sub(2)).saturating_sub(3);
    let in_full = ACTION_LINES
        .iter()
        .all(|a| a.explain().chars().count() <= room);
    ACTION_LINES
        .iter()
        .map(|a| {
            let (key, _) = action_key(*a);
            let what = if in_full {
                a.explain()
            } else {
                action_brief(*a)
            };
            Line::from(vec![
                Span::styled(format!(" {key} "), t.key()),
                Span::raw(what),
            ])
        })
        .collect()
}

/// The narrowest list that shows the short-id column (at 80 columns the names need it).
const ID_COLUMN_FROM: u16 = 100;

fn list_height(body: u16) -> u16 {
    body.saturating_sub(1) / 2
}

impl Component for ConflictsView {
    fn hints(&self) -> Vec<KeyHint> {
        if self.list.searching {
            return search_hints();
        }
        vec![
            hint("Space", "mark"),
            hint_long("A", "all", "mark all matching the filter"),
            hint("e", "edit"),
            action_hint(ResolveAction::UpdateExisting),
            action_hint(ResolveAction::LinkExisting),
            action_hint(ResolveAction::Retry),
            action_hint(ResolveAction::Discard),
            help_only("j/k", "move"),
            help_only("]/[", "scroll the comparison"),
            help_only("Enter", "open the record"),
            help_only("f", "conflicts or rejected"),
            help_only("t", "filter by error type"),
            help_only("/", "search all records"),
            help_only("s", "sort every record"),
        ]
    }

    fn captures_text(&self) -> bool {
        self.list.searching
    }

    fn handle_key(&mut self, key: KeyEvent) -> Action {
        let action = self.handle_key_inner(key);
        // Another record selected: its comparison starts at the top.
        if self.compare_scroll.map(|(id, _)| id) != self.list.selected().map(|r| r.id) {
            self.compare_scroll = None;
        }
        action
    }
    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Ctx) {
        let t = ctx.theme;
        let [top, list, compare] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(list_height(area.height)),
            Constraint::Min(0),
        ])
        .areas(area);
        frame.render_widget(Paragraph::new(search_line(&self.list, t)), top);

        let view = self.list.view();
        // The short id (what `icsync show` takes) where there is room beside the names.
        let with_id = list.width >= ID_COLUMN_FROM;
        let id_width = with_id.then_some(Constraint::Length(8));
        let widths: Vec<Constraint> = [Constraint::Length(3)]
            .into_iter()
            .chain(id_width)
            .chain([
                Constraint::Length(9),
                Constraint::Length(18),
                Constraint::Fill(3),
                Constraint::Fill(4),
                Constraint::Fill(3),
            ])
            .collect();
        let header: Vec<&str> = [""]
            .into_iter()
            .chain(with_id.then_some("id"))
            .chain(["state", "error", "name", "email", "external id"])
            .collect();
        // Each text cell cut to its column with an ellipsis, as the queue does.
        let columns = column_widths(list.width, &widths);
        let text_from = columns.len() - 4;
        let cell = |i: usize, s: &str| cut(s, usize::from(columns[text_from + i]));
        let rows = view.iter().map(|r| {
            let marked = self.mark_all || self.marks.contains(&r.id);
            let id = with_id.then(|| Cell::from(r.id.short()));
            Row::new(
                [Cell::from(if marked { "[x]" } else { "[ ]" })]
                    .into_iter()
                    .chain(id)
                    .chain([
                        Cell::from(Span::styled(r.state.as_str(), t.state(r.state))),
                        Cell::from(cell(0, error_kind(r).map_or("-", ErrorKind::as_str))),
                        Cell::from(cell(1, r.payload.full_name())),
                        Cell::from(cell(2, r.payload.email().unwrap_or("-"))),
                        Cell::from(cell(3, r.payload.external_id().unwrap_or("-"))),
                    ]),
            )
        });
        let marked = if self.mark_all {
            format!(" · marked: every {} record matching", self.state())
        } else if self.marks.is_empty() {
            String::new()
        } else {
            format!(" · marked: {}", self.marks.len())
        };
        let title = format!(" Needs a person{marked} ");
        let table = Table::new(rows, widths)
            .header(Row::new(header).style(t.title()))
            .row_highlight_style(t.selected())
            .block(Block::bordered().title(title));
        let mut state = TableState::default()
            .with_selected((!view.is_empty()).then_some(self.list.selected_index()));
        frame.render_stateful_widget(table, list, &mut state);

        let [left, right] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(compare);
        let selected = self.list.selected();
        match (selected, selected.and_then(|r| r.conflict())) {
            (Some(r), Some((customer_id, _))) => {
                // Read: one table across the width, the two sides aligned field by field.
                // Not read (or gone): the local payload beside why not.
                let read = r.existing.as_ref().is_some_and(|e| e.customer().is_some());
                let (pane_area, width) = if read {
                    (compare, compare.width)
                } else {
                    frame.render_widget(
                        Paragraph::new(payload_lines(r, t)).block(
                            Block::bordered()
                                .title(format!(" Local record, revision {} ", r.revision)),
                        ),
                        left,
                    );
                    (right, right.width)
                };
                self.compare_room.set(field_room(pane_area.height));
                let pane = existing_pane(
                    r,
                    customer_id,
                    t,
                    (width, pane_area.height),
                    self.compare_offset(),
                );
                let mut block = Block::bordered().title(pane.title);
                if let Some(footer) = pane.footer {
                    block = block.title_bottom(footer);
                }
                frame.render_widget(
                    Paragraph::new(pane.lines)
                        .wrap(Wrap { trim: false })
                        .block(block),
                    pane_area,
                );
            }
            (Some(r), None) => {
                frame.render_widget(
                    Paragraph::new(payload_lines(r, t)).block(
                        Block::bordered().title(format!(" Local record, revision {} ", r.revision)),
                    ),
                    left,
                );
                let (title, lines) = other_side(r, t);
                frame.render_widget(
                    Paragraph::new(lines)
                        .wrap(Wrap { trim: false })
                        .block(Block::bordered().title(title)),
                    right,
                );
            }
            (None, _) => frame.render_widget(
                Paragraph::new(Span::styled(" nothing needs a person here", t.dim()))
                    .block(Block::bordered()),
                compare,
            ),
        }
    }
}

/// The right-hand pane for what is not a `customer_conflict`: why the record was refused.
fn other_side<'a>(r: &Record, t: &Theme) -> (&'static str, Vec<Line<'a>>) {
    match &r.last_error {
        Some(RecordError::Api {
            error: ApiError::ValidationError { errors, .. },
        }) => {
            let lines = errors
                .iter()
                .map(|e| {
                    Line::from(vec![
                        Span::styled(format!(" {} ", e.field), t.error()),
                        Span::raw(e.message.clone()),
                    ])
                })
                .collect();
            (" Refused by the API: validation_error ", lines)
        }
        Some(e) => (" Error ", vec![Line::raw(format!(" {e}"))]),
        None => (" Error ", vec![Line::raw(" no error recorded")]),
    }
}

/// Labels of the compared fields, by the contract's member names.
fn field_label(field: &str) -> &str {
    PAYLOAD_FIELDS
        .iter()
        .find(|(path, _)| *path == field)
        .map_or(field, |(_, label)| label)
}

const LABEL_WIDTH: usize = 16;

/// `s` cut to `width` characters (see `text::cut`), padded to it.
fn fit(s: &str, width: usize) -> String {
    format!("{:<width$}", crate::tui::text::cut(s, width))
}

/// The local record beside the existing customer of its `customer_conflict`, one line per
/// field, `≠` (and colour, when allowed) on the fields the local record would change. Fields
/// empty on both sides are left out, so 80x24 shows what matters; lines beyond `height`
/// are cut with a note (the detail screen and `icsync show` have them all). The last lines
/// say what `U` and `L` do to that customer, so the choice is made beside what it changes.
pub struct ExistingPane<'a> {
    pub title: String,
    /// Server-only facts, for the bottom border.
    pub footer: Option<String>,
    pub lines: Vec<Line<'a>>,
}

pub fn existing_pane<'a>(
    r: &Record,
    customer_id: Uuid,
    t: &Theme,
    (width, height): (u16, u16),
    offset: usize,
) -> ExistingPane<'a> {
    let title = format!(
        " Local r{} beside existing customer {customer_id} ",
        r.revision
    );
    let Some(existing) = &r.existing else {
        let external_id = r
            .conflict()
            .and_then(|(_, x)| x.map(str::to_string))
            .unwrap_or_else(|| "none".into());
        return ExistingPane {
            title: " Existing customer ".into(),
            footer: None,
            lines: vec![
                Line::from(Span::raw(format!(" {customer_id}"))),
                Line::from(Span::styled(
                    " existing customer not fetched yet (offline?)",
                    t.warn(),
                )),
                Line::from(Span::styled(
                    " icsync reads it from the server as soon as the API answers.",
                    t.dim(),
                )),
                Line::from(vec![
                    Span::styled(format!(" {:<LABEL_WIDTH$}", "external id"), t.dim()),
                    Span::raw(external_id),
                ]),
            ]
            .into_iter()
            .chain(action_lines(t, width))
            .collect(),
        };
    };
    let Some(customer) = existing.customer() else {
        return ExistingPane {
            title: " Existing customer ".into(),
            footer: None,
            lines: vec![
                Line::from(Span::raw(format!(" {customer_id}"))),
                Line::from(Span::styled(
                    format!(
                        " not found on the server at {} UTC: deleted since the conflict?",
                        time(existing.fetched_at)
                    ),
                    t.warn(),
                )),
            ]
            .into_iter()
            .chain(action_lines(t, width))
            .collect(),
        };
    };
    // Two columns of values share what the marker and the label leave.
    let values = usize::from(width.saturating_sub(2)).saturating_sub(3 + LABEL_WIDTH + 1);
    let local_width = values / 2;
    let existing_width = values - local_width;
    let rows = compare_rows(r);
    let room = field_room(height);
    let offset = offset.min(max_offset(rows.len(), room));
    // Scrolled: the header says how many fields are above.
    let label = if offset > 0 {
        format!("↑ {offset} above")
    } else {
        "field".to_string()
    };
    let mut lines = vec![Line::from(Span::styled(
        format!(
            "   {label:<LABEL_WIDTH$}{} {}",
            fit("local", local_width),
            "existing"
        ),
        t.title(),
    ))];
    // A line for "more below" when the rest does not fit.
    let shown = if rows.len() - offset > room {
        room.saturating_sub(1)
    } else {
        rows.len() - offset
    };
    for c in &rows[offset..offset + shown] {
        let local = match &c.local {
            Patch::Absent => "(not sent)".to_string(),
            Patch::Null => "(cleared)".to_string(),
            Patch::Set(v) => v.clone(),
        };
        let existing = c.existing.clone().unwrap_or_else(|| "-".into());
        let style = if c.differs { t.warn() } else { Style::new() };
        lines.push(Line::from(vec![
            Span::styled(if c.differs { " ≠ " } else { "   " }, t.warn()),
            Span::styled(format!("{:<LABEL_WIDTH$}", field_label(c.field)), t.dim()),
            Span::styled(fit(&local, local_width), style),
            Span::raw(" "),
            Span::styled(fit(&existing, existing_width), style),
        ]));
    }
    let below = rows.len() - offset - shown;
    if below > 0 {
        lines.push(Line::from(Span::styled(
            format!(" … {below} more fields: ] scrolls"),
            t.dim(),
        )));
    } else if offset > 0 {
        lines.push(Line::from(Span::styled(
            format!(" ({offset} fields above: [ scrolls back)"),
            t.dim(),
        )));
    }
    lines.extend(action_lines(t, width));
    let footer = server_only_fields(customer)
        .into_iter()
        .filter(|(name, _)| *name != "id")
        .map(|(name, value)| format!("{name} {value}"))
        .collect::<Vec<_>>()
        .join(" · ");
    ExistingPane {
        title,
        footer: Some(format!(" {footer} · ≠ differs ")),
        lines,
    }
}

/// The fields the comparison shows: every one set on either side.
fn compare_rows(r: &Record) -> Vec<crate::contract::FieldComparison> {
    match r.existing.as_ref().and_then(|e| e.customer()) {
        Some(customer) => compare_with_customer(&r.payload.input(), customer)
            .into_iter()
            .filter(|c| c.existing.is_some() || matches!(c.local, Patch::Set(_)))
            .collect(),
        None => Vec::new(),
    }
}

/// Lines a comparison pane `height` rows tall has for fields and its note (borders, the
/// header row and the actions' lines taken).
fn field_room(height: u16) -> usize {
    usize::from(height.saturating_sub(2)).saturating_sub(1 + ACTION_LINES.len())
}

/// The furthest the comparison scrolls: none when every row fits in `room`; else until the
/// last row shows, below the line saying what is above.
fn max_offset(rows: usize, room: usize) -> usize {
    if rows <= room {
        0
    } else {
        rows - room.saturating_sub(1).max(1)
    }
}
