//! The queue: one page of records as a table (short id from 100 columns, state, revision,
//! name, email, external id, error) with filter, search and sort indicators. Only the visible page is fetched; the
//! sort orders the whole list on the daemon's side (see `paging`).

use crossterm::event::KeyEvent;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use super::{column_widths, error_line};
use crate::store::{Record, RecordState};
use crate::tui::app::ListId;
use crate::tui::component::{help_only, hint, search_hints, Action, Component, Ctx, KeyHint};
use crate::tui::paging::{ListView, Window};
use crate::tui::text::cut;
use crate::tui::theme::Theme;

#[derive(Debug, Clone)]
pub struct QueueView {
    pub list: ListView,
}

impl QueueView {
    pub fn new(rows: usize) -> Self {
        let mut filters = vec![None];
        filters.extend(RecordState::ALL.map(Some));
        QueueView {
            list: ListView::new(Window::new(ListId::Queue, None, rows), filters),
        }
    }

    /// Table rows that fit in a body `height` rows tall: one page.
    pub fn rows_for(height: u16) -> usize {
        height.saturating_sub(4).max(1) as usize
    }
}

/// What is shown (filter, search, sort, page), then the search prompt while it is typed.
pub fn search_line<'a>(list: &ListView, theme: &Theme) -> Line<'a> {
    let mut spans = vec![Span::styled(format!(" {}", list.indicators()), theme.dim())];
    if list.searching {
        spans.push(Span::styled("  / ", theme.key()));
        spans.push(Span::raw(format!("{}▏", list.search)));
    }
    Line::from(spans)
}

/// The narrowest table that shows the short-id column (what `icsync show` takes): at 80
/// columns the names need the room.
const ID_COLUMN_FROM: u16 = 100;

/// One record's cells, each cut to its column's width (`widths`, in the order of the
/// columns) with an ellipsis where it does not fit; with `with_id`, its short id first.
pub fn record_row<'a>(r: &Record, theme: &Theme, widths: &[u16], with_id: bool) -> Vec<Cell<'a>> {
    let p = &r.payload;
    let shift = usize::from(with_id);
    let fit = |i: usize, s: &str| {
        cut(
            s,
            widths
                .get(i + shift)
                .copied()
                .map_or(usize::MAX, usize::from),
        )
    };
    let id = with_id.then(|| Cell::from(r.id.short()));
    id.into_iter()
        .chain([
            Cell::from(Span::styled(r.state.as_str(), theme.state(r.state))),
            Cell::from(r.revision.to_string()),
            Cell::from(fit(2, p.full_name())),
            Cell::from(fit(3, p.email().unwrap_or("-"))),
            Cell::from(fit(4, p.external_id().unwrap_or("-"))),
            Cell::from(Span::styled(fit(5, &error_line(r)), theme.error())),
        ])
        .collect()
}

impl Component for QueueView {
    fn hints(&self) -> Vec<KeyHint> {
        if self.list.searching {
            return search_hints();
        }
        vec![
            hint("j/k", "move"),
            hint("Enter", "open"),
            hint("/", "search"),
            hint("f", "state"),
            hint("s", "sort"),
            help_only("g/G", "first page / last row of this page"),
            help_only("PgDn/PgUp", "next / previous page"),
            help_only("note", "s sorts every record, not just this page"),
        ]
    }

    fn handle_key(&mut self, key: KeyEvent) -> Action {
        self.list.handle_key(key)
    }

    fn captures_text(&self) -> bool {
        self.list.searching
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Ctx) {
        let [top, table] =
            Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
        frame.render_widget(Paragraph::new(search_line(&self.list, ctx.theme)), top);
        let view = self.list.view();
        let with_id = table.width >= ID_COLUMN_FROM;
        let widths: Vec<Constraint> = with_id
            .then_some(Constraint::Length(8))
            .into_iter()
            .chain([
                Constraint::Length(9),
                Constraint::Length(3),
                Constraint::Fill(3),
                Constraint::Fill(4),
                Constraint::Fill(3),
                Constraint::Fill(3),
            ])
            .collect();
        let columns = column_widths(table.width, &widths);
        let rows = view
            .iter()
            .map(|r| Row::new(record_row(r, ctx.theme, &columns, with_id)));
        let total = ctx.status.map(|s| match self.list.window.filter() {
            None => s.total,
            Some(RecordState::Queued) => s.queued,
            Some(RecordState::Sending) => s.sending,
            Some(RecordState::Synced) => s.synced,
            Some(RecordState::Conflict) => s.conflict,
            Some(RecordState::Rejected) => s.rejected,
            Some(RecordState::Discarded) => s.discarded,
        });
        let title = match (total, self.list.window.filter()) {
            (Some(n), Some(state)) => format!(" Queue · {state} only: {n} records "),
            (Some(n), None) => format!(" Queue: {n} records "),
            (None, Some(state)) => format!(" Queue · {state} only "),
            (None, None) => " Queue ".into(),
        };
        let empty = view.is_empty();
        let t = Table::new(rows, widths)
            .header(
                Row::new(with_id.then_some("id").into_iter().chain([
                    "state",
                    "rev",
                    "name",
                    "email",
                    "external id",
                    "error",
                ]))
                .style(ctx.theme.title()),
            )
            .row_highlight_style(ctx.theme.selected())
            .block(Block::bordered().title(title));
        let mut state =
            TableState::default().with_selected((!empty).then_some(self.list.selected_index()));
        frame.render_stateful_widget(t, table, &mut state);
        let sorting = self.list.window.sorting().is_some();
        if empty && (sorting || !self.list.window.loading()) {
            let inner = Rect {
                y: table.y + 2,
                height: 1,
                x: table.x + 2,
                width: table.width.saturating_sub(4),
            };
            let text = if sorting {
                "the daemon is sorting every record…"
            } else {
                "no records match"
            };
            frame.render_widget(Paragraph::new(Span::styled(text, ctx.theme.dim())), inner);
        }
    }
}
