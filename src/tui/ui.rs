//! Draws a whole frame from an [`App`]: the tab bar with the sync badge, the current
//! screen, the footer (a notice, or the screen's key hints) and any overlay. Pure: reads
//! the app, writes the frame.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::app::{App, Connection, Level, Overlay, ScreenId, GLOBAL_HINTS};
use super::component::{Component, Ctx, KeyHint};
use super::screens::{confirm, help, unlock};
use super::theme::Theme;

pub fn draw(frame: &mut Frame, app: &App, theme: &Theme) {
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let ctx = Ctx {
        theme,
        now: app.now,
        status: app.status.as_ref(),
        connection: &app.connection,
    };
    draw_header(frame, header, app, theme);
    let screen: &dyn Component = match app.screen {
        ScreenId::Dashboard => &app.dashboard,
        ScreenId::Queue => &app.queue,
        ScreenId::Conflicts => &app.conflicts,
        ScreenId::Capture => &app.capture,
        ScreenId::Detail => &app.detail,
        ScreenId::Refused => &app.refused,
    };
    screen.draw(frame, body, &ctx);
    draw_footer(frame, footer, app, theme);
    match &app.overlay {
        Some(Overlay::Help) => help::draw(frame, body, app.screen, &app.hints(), theme),
        Some(Overlay::Confirm(c)) => confirm::draw(frame, body, c, theme),
        Some(Overlay::Unlock(p)) => unlock::draw(frame, body, p, theme),
        None => {}
    }
}

fn draw_header(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let (badge, style) = badge(app, theme);
    let badge_width = badge.chars().count() as u16;
    let crumb = matches!(app.screen, ScreenId::Detail | ScreenId::Refused)
        .then(|| format!(" › {} ", app.screen.title()));
    // Every tab by name when that fits beside the badge; else the others by number only, so
    // neither the screen's name nor the badge is ever cut (80 columns, in-process badge).
    let tabs = |short: bool| -> Vec<(String, bool)> {
        ScreenId::TABS
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let active = *s == app.screen;
                let label = if short && !active {
                    format!(" {} ", i + 1)
                } else {
                    format!(" {} {} ", i + 1, s.title())
                };
                (label, active)
            })
            .collect()
    };
    let width = |tabs: &[(String, bool)]| {
        8 + tabs.iter().map(|(l, _)| l.chars().count()).sum::<usize>()
            + crumb.as_deref().map_or(0, |c| c.chars().count())
            + usize::from(badge_width)
    };
    let mut labels = tabs(false);
    if width(&labels) > usize::from(area.width) {
        labels = tabs(true);
    }
    let mut spans = vec![Span::styled(" icsync ", theme.title())];
    for (label, active) in labels {
        let style = if active {
            theme.active_tab()
        } else {
            theme.dim()
        };
        spans.push(Span::styled(label, style));
    }
    if let Some(crumb) = crumb {
        spans.push(Span::styled(crumb, theme.active_tab()));
    }
    let [left, right] =
        Layout::horizontal([Constraint::Min(0), Constraint::Length(badge_width)]).areas(area);
    frame.render_widget(Paragraph::new(Line::from(spans)), left);
    frame.render_widget(Paragraph::new(Span::styled(badge, style)), right);
}

/// The sync state in a word or two, for the corner of every screen.
fn badge(app: &App, theme: &Theme) -> (String, ratatui::style::Style) {
    let (text, style) = connection_badge(app, theme);
    if app.in_process {
        (format!("{}· in-process ", text), style)
    } else {
        (text, style)
    }
}

fn connection_badge(app: &App, theme: &Theme) -> (String, ratatui::style::Style) {
    match (&app.connection, &app.status) {
        (Connection::Lost { .. }, _) => (" NO DAEMON ".into(), theme.error()),
        (Connection::Connecting, _) | (_, None) => (" connecting ".into(), theme.dim()),
        (_, Some(s)) if s.damaged => (" STORE DAMAGED ".into(), theme.error()),
        (_, Some(s)) if s.disk_full => (" DISK FULL ".into(), theme.error()),
        (_, Some(s)) if s.locked => (" LOCKED ".into(), theme.warn()),
        (_, Some(s)) if s.paused.is_some() => (" PAUSED ".into(), theme.warn()),
        (_, Some(s)) if !s.online => (" OFFLINE ".into(), theme.warn()),
        (_, Some(_)) => (" online ".into(), theme.ok()),
    }
}

fn draw_footer(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let line = match &app.notice {
        Some(n) => {
            let style = match n.level {
                Level::Info => theme.ok(),
                Level::Error => theme.error(),
            };
            Line::from(Span::styled(format!(" {}", n.text), style))
        }
        None => {
            // Global keys first, so `? help` is never cut off on a narrow terminal.
            let hints = app.hints();
            let (global, local): (Vec<&KeyHint>, Vec<&KeyHint>) = hints
                .iter()
                .filter(|h| h.footer)
                .partition(|h| GLOBAL_HINTS.contains(h));
            // Whole hints only: one that does not fit is left out (`?` lists every key), so
            // the footer never ends in half a word.
            let mut spans = Vec::new();
            let mut used = 0usize;
            for h in global.into_iter().chain(local) {
                let (keys, what) = (format!(" {}", h.keys), format!(" {} ", h.what));
                let width = keys.chars().count() + what.chars().count();
                if used + width > usize::from(area.width) {
                    break;
                }
                used += width;
                spans.push(Span::styled(keys, theme.key()));
                spans.push(Span::raw(what));
            }
            Line::from(spans)
        }
    };
    frame.render_widget(Paragraph::new(line), area);
}
