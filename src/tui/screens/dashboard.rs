//! The dashboard: counts per state, synced-per-second sparkline, the online / offline /
//! paused banner with its reason, and the last sync. It owns the throughput history, which
//! it samples from the status counts on each clock tick.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use crossterm::event::KeyEvent;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Sparkline, Wrap};
use ratatui::Frame;

use super::ago;
use crate::store::RecordState;
use crate::tui::app::Connection;
use crate::tui::component::{hint, Action, Component, Ctx, KeyHint};

/// Seconds of throughput kept: wider than any terminal the sparkline is drawn in.
pub const HISTORY_SECONDS: usize = 240;

#[derive(Debug, Clone, Default)]
pub struct DashboardView {
    /// Records synced in each second, oldest first.
    history: VecDeque<u64>,
    last: Option<(i64, u64)>,
}

impl DashboardView {
    /// Records the synced count seen at `now`; one history entry per elapsed second.
    pub fn sample(&mut self, now: DateTime<Utc>, synced: u64) {
        let second = now.timestamp();
        match self.last {
            None => self.last = Some((second, synced)),
            Some((prev_second, prev)) if second > prev_second => {
                let elapsed = (second - prev_second) as usize;
                for _ in 1..elapsed.min(HISTORY_SECONDS) {
                    self.push(0);
                }
                self.push(synced.saturating_sub(prev));
                self.last = Some((second, synced));
            }
            Some(_) => {}
        }
    }

    fn push(&mut self, v: u64) {
        if self.history.len() == HISTORY_SECONDS {
            self.history.pop_front();
        }
        self.history.push_back(v);
    }

    pub fn history(&self) -> impl Iterator<Item = u64> + '_ {
        self.history.iter().copied()
    }
}

impl Component for DashboardView {
    fn hints(&self) -> Vec<KeyHint> {
        vec![hint("Tab", "next screen"), hint("c", "capture")]
    }

    fn handle_key(&mut self, _key: KeyEvent) -> Action {
        Action::Unhandled
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Ctx) {
        let [banner, middle, needs] = Layout::vertical([
            Constraint::Length(5),
            Constraint::Min(9),
            Constraint::Length(3),
        ])
        .areas(area);
        let [counts, spark] =
            Layout::horizontal([Constraint::Length(26), Constraint::Min(20)]).areas(middle);
        let t = ctx.theme;

        let (headline, style, reason) = match (ctx.connection, ctx.status) {
            (Connection::Lost { reason }, _) => (
                "NO DAEMON".to_string(),
                t.error(),
                format!("{reason}; start it with `icsync daemon` and reopen"),
            ),
            (Connection::Connecting, _) | (_, None) => (
                "CONNECTING".into(),
                t.dim(),
                "waiting for the daemon's status".into(),
            ),
            (_, Some(s)) => match (&s.paused, s.online) {
                (Some(why), _) => (
                    "PAUSED".into(),
                    t.warn(),
                    format!("{why}; nothing is sent until this is fixed"),
                ),
                (None, false) => (
                    "OFFLINE".into(),
                    t.warn(),
                    "the API cannot be reached; records wait and retry".into(),
                ),
                (None, true) => ("ONLINE".into(), t.ok(), "sending as records arrive".into()),
            },
        };
        let last_sync = match ctx.status.and_then(|s| s.last_sync_at) {
            Some(at) => format!("{} UTC ({})", super::time(at), ago(at, ctx.now)),
            None => "never".into(),
        };
        let lines = vec![
            Line::from(vec![
                Span::styled(format!(" {headline} "), style),
                Span::styled("  last sync ", t.dim()),
                Span::raw(last_sync),
            ]),
            Line::raw(format!(" {reason}")),
        ];
        frame.render_widget(
            Paragraph::new(lines)
                .wrap(Wrap { trim: false })
                .block(Block::bordered().title(" Sync ")),
            banner,
        );

        let mut lines = Vec::new();
        if let Some(s) = ctx.status {
            let count = |st: RecordState| match st {
                RecordState::Queued => s.queued,
                RecordState::Sending => s.sending,
                RecordState::Synced => s.synced,
                RecordState::Conflict => s.conflict,
                RecordState::Rejected => s.rejected,
                RecordState::Discarded => s.discarded,
            };
            for st in RecordState::ALL {
                lines.push(Line::from(vec![
                    Span::styled(format!(" {:<10}", st.as_str()), t.state(st)),
                    Span::raw(format!("{:>12}", count(st))),
                ]));
            }
            lines.push(Line::from(vec![
                Span::styled(format!(" {:<10}", "total"), t.title()),
                Span::styled(format!("{:>12}", s.total), t.title()),
            ]));
        }
        frame.render_widget(
            Paragraph::new(lines).block(Block::bordered().title(" Records ")),
            counts,
        );

        // The newest seconds on the right, as many as fit.
        let width = spark.width.saturating_sub(2) as usize;
        let data: Vec<u64> = self.history().collect();
        let shown = &data[data.len().saturating_sub(width)..];
        let peak = shown.iter().copied().max().unwrap_or(0);
        let now = shown.last().copied().unwrap_or(0);
        frame.render_widget(
            Sparkline::default()
                .block(
                    Block::bordered().title(format!(" Synced per second: now {now}, peak {peak} ")),
                )
                .style(t.ok())
                .data(shown),
            spark,
        );

        let (conflict, rejected) = ctx.status.map_or((0, 0), |s| (s.conflict, s.rejected));
        let line = if conflict + rejected == 0 {
            Line::from(Span::styled(" Nothing needs a person.", t.dim()))
        } else {
            Line::from(vec![
                Span::styled(
                    format!(" {conflict} conflict, {rejected} rejected"),
                    t.error(),
                ),
                Span::raw(" need a person: press "),
                Span::styled("3", t.key()),
                Span::raw(" for Conflicts"),
            ])
        };
        frame.render_widget(
            Paragraph::new(line).block(Block::bordered().title(" Needs a person ")),
            needs,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn throughput_is_the_synced_delta_per_second_with_gaps_as_zero() {
        let t = |s: i64| Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap();
        let mut d = DashboardView::default();
        d.sample(t(0), 100);
        d.sample(t(0), 150);
        d.sample(t(1), 160);
        d.sample(t(4), 190);
        assert_eq!(d.history().collect::<Vec<_>>(), vec![60, 0, 0, 30]);
    }

    #[test]
    fn history_is_bounded() {
        let mut d = DashboardView::default();
        for s in 0..(HISTORY_SECONDS as i64 + 50) {
            d.sample(Utc.timestamp_opt(s, 0).unwrap(), s as u64);
        }
        assert_eq!(d.history().count(), HISTORY_SECONDS);
    }
}
