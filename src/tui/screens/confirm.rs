//! The one confirm popup every destructive action goes through (gitui's pattern): discard,
//! bulk discard, quitting or replacing a form with unsaved input.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::centered;
use crate::tui::app::Confirm;
use crate::tui::theme::Theme;

pub fn draw(frame: &mut Frame, area: Rect, confirm: &Confirm, theme: &Theme) {
    let popup = centered(area, 60, 7);
    let lines = vec![
        Line::raw(confirm.message.as_str()),
        Line::raw(""),
        Line::from(vec![
            Span::styled("y", theme.key()),
            Span::raw(" yes   "),
            Span::styled("n", theme.key()),
            Span::raw(" / "),
            Span::styled("Esc", theme.key()),
            Span::raw(" no"),
        ]),
    ];
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: true }).block(
            Block::bordered()
                .title(" Confirm ")
                .border_style(theme.warn()),
        ),
        popup,
    );
}
