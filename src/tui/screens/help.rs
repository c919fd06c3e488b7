//! The `?` overlay: every key of the current screen and the global keys, generated from the
//! same hints the footer uses. When the list is taller than the screen it flows into a
//! second column, so every key stays visible at 80x24.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};
use ratatui::Frame;

use super::centered;
use crate::tui::app::ScreenId;
use crate::tui::component::KeyHint;
use crate::tui::theme::Theme;

pub fn draw(frame: &mut Frame, area: Rect, screen: ScreenId, hints: &[KeyHint], theme: &Theme) {
    // A screen's hint for a key that a later (global) line also explains is listed once,
    // as the later, fuller line: `Tab` beside `Tab/S-Tab`, `c` twice.
    let covers = |later: &str, key: &str| later == key || later.split('/').any(|k| k == key);
    let mut lines: Vec<(&str, &str)> = hints
        .iter()
        .enumerate()
        .filter(|(i, h)| {
            !hints[i + 1..]
                .iter()
                .any(|later| covers(later.keys, h.keys))
        })
        .map(|(_, h)| (h.keys, h.detail.unwrap_or(h.what)))
        .collect();
    lines.push(("Esc", "closes this help"));
    let room = area.height.saturating_sub(2).max(1) as usize;
    let columns = lines.len().div_ceil(room).max(1);
    let rows = lines.len().div_ceil(columns);
    let width = if columns == 1 { 72 } else { area.width };
    let popup = centered(area, width, rows as u16 + 2);
    frame.render_widget(Clear, popup);
    let block = Block::bordered().title(format!(" Keys: {} ", screen.title()));
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let cells = Layout::horizontal(vec![Constraint::Fill(1); columns]).split(inner);
    for (chunk, cell) in lines.chunks(rows).zip(cells.iter()) {
        let keys_width = chunk.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let text: Vec<Line> = chunk
            .iter()
            .map(|(keys, what)| {
                Line::from(vec![
                    Span::styled(format!(" {keys:>keys_width$} "), theme.key()),
                    Span::raw(*what),
                ])
            })
            .collect();
        frame.render_widget(Paragraph::new(text), *cell);
    }
}
