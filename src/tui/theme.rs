//! Colours and emphasis. Every style the screens use comes from here, so `NO_COLOR` is
//! honoured in one place: the plain theme uses only bold, reverse and underline.

use ratatui::style::{Color, Modifier, Style};

use crate::store::RecordState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    pub plain: bool,
}

impl Theme {
    pub const COLOR: Theme = Theme { plain: false };
    pub const PLAIN: Theme = Theme { plain: true };

    /// The plain theme when `NO_COLOR` is set to a non-empty value (no-color.org).
    pub fn from_env() -> Theme {
        Self::for_no_color(std::env::var_os("NO_COLOR").as_deref())
    }

    pub fn for_no_color(value: Option<&std::ffi::OsStr>) -> Theme {
        match value {
            Some(v) if !v.is_empty() => Theme::PLAIN,
            _ => Theme::COLOR,
        }
    }

    fn fg(&self, color: Color) -> Style {
        if self.plain {
            Style::new()
        } else {
            Style::new().fg(color)
        }
    }

    pub fn title(&self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }

    pub fn dim(&self) -> Style {
        if self.plain {
            Style::new()
        } else {
            Style::new().fg(Color::DarkGray)
        }
    }

    pub fn key(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    pub fn selected(&self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }

    pub fn active_tab(&self) -> Style {
        self.fg(Color::Yellow)
            .add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
    }

    pub fn ok(&self) -> Style {
        self.fg(Color::Green).add_modifier(Modifier::BOLD)
    }

    pub fn warn(&self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }

    pub fn error(&self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }

    pub fn state(&self, state: RecordState) -> Style {
        match state {
            RecordState::Queued => self.fg(Color::Blue),
            RecordState::Sending => self.fg(Color::Cyan),
            RecordState::Synced => self.fg(Color::Green),
            RecordState::Conflict => self.fg(Color::Magenta).add_modifier(Modifier::BOLD),
            RecordState::Rejected => self.fg(Color::Red).add_modifier(Modifier::BOLD),
            RecordState::Discarded => self.dim(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn no_color_set_and_non_empty_selects_the_plain_theme() {
        assert_eq!(Theme::for_no_color(Some(OsStr::new("1"))), Theme::PLAIN);
        assert_eq!(Theme::for_no_color(Some(OsStr::new(""))), Theme::COLOR);
        assert_eq!(Theme::for_no_color(None), Theme::COLOR);
    }

    #[test]
    fn the_plain_theme_sets_no_colour() {
        let t = Theme::PLAIN;
        let styles = [
            t.key(),
            t.ok(),
            t.warn(),
            t.error(),
            t.dim(),
            t.active_tab(),
        ]
        .into_iter()
        .chain(RecordState::ALL.into_iter().map(|s| t.state(s)));
        for s in styles {
            assert_eq!((s.fg, s.bg), (None, None), "{s:?}");
        }
    }
}
