//! The dashboard: counts per state, synced-per-second sparkline, the online / offline /
//! paused / locked banner with its reason, the last sync, the drop folder's recent files
//! with their outcome, and what needs a person: conflicts, records the API refused, and rows
//! refused from dropped files (`r` lists them). It owns the throughput history, which it
//! samples from the status counts on each clock tick, and the last drop-file list the app
//! fetched for it.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Sparkline, Wrap};
use ratatui::Frame;

use super::ago;
use super::refused::refused_counts;
use crate::store::{DropFileEntry, DropOutcome, RecordState};
use crate::tui::app::Connection;
use crate::tui::component::{hint, hint_long, Action, Component, Ctx, KeyHint};

/// Seconds of throughput kept: wider than any terminal the sparkline is drawn in.
pub const HISTORY_SECONDS: usize = 240;

#[derive(Debug, Clone, Default)]
pub struct DashboardView {
    /// Records synced in each second, oldest first.
    history: VecDeque<u64>,
    last: Option<(i64, u64)>,
    /// The drop folder's recent files, newest first, as the daemon last sent them.
    pub drops: Vec<DropFileEntry>,
    /// The drop folder, absolute, as the daemon last said.
    pub folder: Option<String>,
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
        vec![
            hint("Tab", "next screen"),
            hint("c", "capture"),
            hint_long(
                "r",
                "refused rows",
                "rows refused from dropped files: each row's line and reason, and the report",
            ),
        ]
    }

    fn handle_key(&mut self, key: KeyEvent) -> Action {
        match key.code {
            KeyCode::Char('r') => Action::ShowRefused,
            _ => Action::Unhandled,
        }
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Ctx) {
        let needs_lines = self.needs_lines(ctx);
        let needs_rows = needs_lines.len() as u16 + 2;
        // The drop panel takes a third of what the banner and the footer box leave, at least
        // three lines (five rows) while the counts still fit, and no more than it has files.
        let rest = area.height.saturating_sub(5 + needs_rows);
        let wanted = (self.drops.len().max(1) as u16 + 2).min(rest / 3).max(5);
        let drops_rows = wanted.min(rest.saturating_sub(9));
        let [banner, middle, drops, needs] = Layout::vertical([
            Constraint::Length(5),
            Constraint::Min(9),
            Constraint::Length(drops_rows),
            Constraint::Length(needs_rows),
        ])
        .areas(area);
        let [counts, spark] =
            Layout::horizontal([Constraint::Length(26), Constraint::Min(20)]).areas(middle);
        let t = ctx.theme;

        self.draw_drops(frame, drops, ctx);

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
            (_, Some(s)) if s.damaged => (
                "STORE DAMAGED".into(),
                t.error(),
                s.paused.clone().unwrap_or_default(),
            ),
            (_, Some(s)) if s.disk_full => (
                "DISK FULL".into(),
                t.error(),
                s.paused.clone().unwrap_or_default(),
            ),
            (_, Some(s)) if s.locked => (
                "LOCKED".into(),
                t.warn(),
                "the store is locked: records wait; press u to unlock".into(),
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
                    match &s.api_host {
                        Some(host) => format!("cannot reach {host}; records wait and retry"),
                        None => "the API cannot be reached; records wait and retry".into(),
                    },
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

        frame.render_widget(
            Paragraph::new(needs_lines).block(Block::bordered().title(" Needs a person ")),
            needs,
        );
    }
}

impl DashboardView {
    /// Records that need a person (press 3), then rows refused from dropped files (press r),
    /// each on its own line; one line when there is nothing.
    fn needs_lines<'a>(&self, ctx: &Ctx) -> Vec<Line<'a>> {
        let t = ctx.theme;
        let (conflict, rejected) = ctx.status.map_or((0, 0), |s| (s.conflict, s.rejected));
        let (rows, files) = refused_counts(&self.drops);
        let mut lines = Vec::new();
        if conflict + rejected > 0 {
            lines.push(Line::from(vec![
                Span::styled(
                    format!(" {conflict} conflict, {rejected} rejected by the API"),
                    t.error(),
                ),
                Span::raw(": press "),
                Span::styled("3", t.key()),
                Span::raw(" for Conflicts"),
            ]));
        }
        if files > 0 {
            lines.push(Line::from(vec![
                Span::styled(
                    format!(
                        " {} refused from {}",
                        crate::tui::app::plural(rows as usize, "row"),
                        crate::tui::app::plural(files, "dropped file")
                    ),
                    t.warn(),
                ),
                Span::raw(" (not queued): press "),
                Span::styled("r", t.key()),
                Span::raw(" to list them"),
            ]));
        }
        if lines.is_empty() {
            lines.push(Line::from(Span::styled(
                " Nothing needs a person.",
                t.dim(),
            )));
        }
        lines
    }

    /// One line per recent file, newest first: time, name, outcome, counts, where it went.
    fn draw_drops(&self, frame: &mut Frame, area: Rect, ctx: &Ctx) {
        let t = ctx.theme;
        let inner = area.width.saturating_sub(2) as usize;
        let lines: Vec<Line> = if self.drops.is_empty() {
            vec![Line::from(Span::styled(
                " No file has been dropped yet.",
                t.dim(),
            ))]
        } else {
            self.drops
                .iter()
                .take(area.height.saturating_sub(2) as usize)
                .map(|d| drop_line(d, inner, ctx))
                .collect()
        };
        // Where the folder is: files are dropped there, and their refused rows wait there.
        let room = inner.saturating_sub(30);
        let title = match &self.folder {
            Some(folder) if room >= 12 => format!(
                " Drop folder {}: recent files ",
                crate::tui::text::cut(folder, room)
            ),
            _ => " Drop folder: recent files ".to_string(),
        };
        frame.render_widget(
            Paragraph::new(lines).block(Block::bordered().title(title)),
            area,
        );
    }
}

fn drop_line<'a>(d: &'a DropFileEntry, width: usize, ctx: &Ctx) -> Line<'a> {
    let t = ctx.theme;
    let (outcome, style) = match d.outcome {
        DropOutcome::Processed => ("processed", t.ok()),
        // Rows a file held that could not be read are "refused" (never queued), as `icsync
        // import` says; "rejected" is kept for the API's verdict on a record.
        DropOutcome::PartlyRejected => ("some refused", t.warn()),
        DropOutcome::Rejected => ("refused", t.error()),
        DropOutcome::Duplicate => ("duplicate", t.dim()),
    };
    // Fixed-width counts keep the columns aligned from line to line.
    let counts = format!("{:>6} queued {:>4} refused", d.accepted, d.rejected);
    // What is left after the fixed columns goes to the name first, then to where it went.
    let fixed = 1 + 8 + 2 + 2 + 15 + 2 + counts.chars().count();
    let spare = width.saturating_sub(fixed);
    let name_width = spare.clamp(8.min(spare), 24);
    let mut spans = vec![
        Span::styled(format!(" {} ", d.at.format("%H:%M:%S")), t.dim()),
        Span::raw(format!(
            " {:<name_width$}  ",
            crate::tui::text::cut(&d.file, name_width)
        )),
        Span::styled(format!("{outcome:<15}"), style),
        Span::raw(format!("  {counts}")),
    ];
    let left = spare.saturating_sub(name_width);
    // Why (a rejected file, a duplicate), else the report a person must read, else how the
    // file was read and where it went.
    let whereto = match (&d.note, &d.report, &d.read_as) {
        (Some(note), _, _) => Some(note.clone()),
        (None, Some(report), _) => Some(report.clone()),
        (None, None, Some(read_as)) => Some(match &d.archived_as {
            Some(archived) => format!("{read_as} · {archived}"),
            None => format!("{read_as} · removed once stored"),
        }),
        (None, None, None) => d.archived_as.clone(),
    };
    if let Some(w) = whereto.filter(|_| left > 6) {
        spans.push(Span::styled(
            format!("  {}", crate::tui::text::cut(&w, left - 2)),
            t.dim(),
        ));
    }
    Line::from(spans)
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
