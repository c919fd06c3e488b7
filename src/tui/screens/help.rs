//! The `?` overlay: every key of the current screen and the global keys, generated from the
//! same hints the footer uses.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::centered;
use crate::tui::app::ScreenId;
use crate::tui::component::KeyHint;
use crate::tui::theme::Theme;

pub fn draw(frame: &mut Frame, area: Rect, screen: ScreenId, hints: &[KeyHint], theme: &Theme) {
    let keys_width = hints.iter().map(|h| h.keys.len()).max().unwrap_or(0);
    let mut lines: Vec<Line> = hints
        .iter()
        .map(|h| {
            Line::from(vec![
                Span::styled(format!(" {:>keys_width$} ", h.keys), theme.key()),
                Span::raw(h.what),
            ])
        })
        .collect();
    lines.push(Line::from(Span::styled(
        " Esc or ? closes this help",
        theme.dim(),
    )));
    let height = lines.len() as u16 + 2;
    let popup = centered(area, 72, height);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(format!(" Keys: {} ", screen.title()))),
        popup,
    );
}
