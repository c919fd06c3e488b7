//! Rows refused from dropped files, opened with `r` from the dashboard: the recent drop-folder
//! files that had rows refused (or were refused whole), and for the one selected, its first
//! refused rows (position and reason) as the daemon read them from the file's report, with
//! the paths of the report and of the copy to fix and drop again, and how long they are kept
//! there (the drop folder's `rejected/`, until retention erases them). The rows come one file at
//! a time (`drop_report`), so the screen holds at most one report's bounded rows.

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

use super::hanging;
use crate::control::{DropReport, Request};
use crate::dropdir::REJECTED_DIR;
use crate::store::{DropFileEntry, DropOutcome};
use crate::tui::app::plural;
use crate::tui::app::{Outgoing, Purpose};
use crate::tui::component::{help_only, hint, Action, Component, Ctx, KeyHint};
use crate::tui::text::cut;
use crate::tui::theme::Theme;

/// Files listed at once above the rows.
const FILES_SHOWN: usize = 5;

/// Whether a recent file left rows (or itself) for a person in `rejected/`.
pub fn has_refused(entry: &DropFileEntry) -> bool {
    entry.report.is_some()
        && matches!(
            entry.outcome,
            DropOutcome::PartlyRejected | DropOutcome::Rejected
        )
}

/// Refused rows and files refused whole among `files`: what the dashboard counts.
pub fn refused_counts(files: &[DropFileEntry]) -> (u64, usize) {
    let refused: Vec<&DropFileEntry> = files.iter().filter(|e| has_refused(e)).collect();
    (refused.iter().map(|e| e.rejected).sum(), refused.len())
}

#[derive(Debug, Clone, Default)]
pub struct RefusedView {
    files: Vec<DropFileEntry>,
    /// The drop folder, absolute, when the daemon said.
    folder: Option<String>,
    selected: usize,
    /// The selected file's report as last read, and the report path it was asked by.
    report: Option<(String, DropReport)>,
    /// Why the selected file's report could not be read.
    error: Option<String>,
    scroll: usize,
}

impl RefusedView {
    /// Shows the files of `drops` with refused rows, keeping the selected one if it is still
    /// there, and asks for its rows.
    pub fn open(&mut self, drops: &[DropFileEntry], folder: Option<String>) -> Option<Outgoing> {
        let current = self.selected_report().map(str::to_owned);
        self.files = drops.iter().filter(|e| has_refused(e)).cloned().collect();
        self.folder = folder;
        self.selected = current
            .and_then(|r| {
                self.files
                    .iter()
                    .position(|e| e.report.as_deref() == Some(&r))
            })
            .unwrap_or(0);
        self.request()
    }

    fn selected_report(&self) -> Option<&str> {
        self.files.get(self.selected)?.report.as_deref()
    }

    fn request(&mut self) -> Option<Outgoing> {
        let report = self.selected_report()?.to_string();
        self.error = None;
        Some(Outgoing {
            purpose: Purpose::DropReport {
                report: report.clone(),
            },
            request: Request::DropReport { report },
        })
    }

    /// Takes the daemon's answer for `report`; one for a file no longer selected is dropped.
    pub fn loaded(&mut self, report: &str, answer: Result<DropReport, String>) {
        if self.selected_report() != Some(report) {
            return;
        }
        match answer {
            Ok(r) => {
                self.report = Some((report.to_string(), r));
                self.error = None;
            }
            Err(e) => self.error = Some(e),
        }
    }

    fn select(&mut self, to: usize) -> Action {
        if to == self.selected || to >= self.files.len() {
            return Action::Handled;
        }
        self.selected = to;
        self.scroll = 0;
        match self.request() {
            Some(out) => Action::Send(out),
            None => Action::Handled,
        }
    }

    /// A path relative to the drop folder, made absolute when the folder is known.
    fn full_path(&self, relative: &str) -> String {
        match &self.folder {
            Some(f) => format!("{}/{relative}", f.trim_end_matches('/')),
            None => relative.to_string(),
        }
    }
}

impl Component for RefusedView {
    fn hints(&self) -> Vec<KeyHint> {
        vec![
            hint("Esc", "back"),
            hint("↑/↓", "file"),
            help_only("PgUp/PgDn", "scroll the refused rows"),
        ]
    }

    fn handle_key(&mut self, key: KeyEvent) -> Action {
        match key.code {
            KeyCode::Down | KeyCode::Char('j') => self.select(self.selected + 1),
            KeyCode::Up | KeyCode::Char('k') => self.select(self.selected.saturating_sub(1)),
            KeyCode::PageDown => {
                self.scroll += 5;
                Action::Handled
            }
            KeyCode::PageUp => {
                self.scroll = self.scroll.saturating_sub(5);
                Action::Handled
            }
            KeyCode::Esc => Action::Back,
            _ => Action::Unhandled,
        }
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Ctx) {
        let t = ctx.theme;
        if self.files.is_empty() {
            frame.render_widget(
                Paragraph::new(Span::styled(
                    " No recent dropped file had rows refused.",
                    t.dim(),
                ))
                .block(Block::bordered().title(" Refused rows of dropped files ")),
                area,
            );
            return;
        }
        let listed = self.files.len().min(FILES_SHOWN) as u16;
        let [list, rows] =
            Layout::vertical([Constraint::Length(listed + 2), Constraint::Min(3)]).areas(area);
        self.draw_files(frame, list, t);
        self.draw_rows(frame, rows, t);
    }
}

impl RefusedView {
    fn draw_files(&self, frame: &mut Frame, area: Rect, t: &Theme) {
        let inner = area.width.saturating_sub(2) as usize;
        // The window of files around the selected one.
        let first = self.selected.saturating_sub(FILES_SHOWN - 1);
        let lines: Vec<Line> = self
            .files
            .iter()
            .enumerate()
            .skip(first)
            .take(FILES_SHOWN)
            .map(|(i, e)| {
                let what = match e.outcome {
                    DropOutcome::Rejected => "refused whole: not read".to_string(),
                    _ => format!(
                        "{} refused, {} queued",
                        plural(e.rejected as usize, "row"),
                        e.accepted
                    ),
                };
                let name_width = inner.saturating_sub(12 + what.chars().count()).max(8);
                let text = format!(
                    " {}  {:<name_width$} {what}",
                    e.at.format("%H:%M:%S"),
                    cut(&e.file, name_width)
                );
                let style = if i == self.selected {
                    t.selected()
                } else {
                    Style::default()
                };
                Line::from(Span::styled(cut(&text, inner), style))
            })
            .collect();
        let title = format!(
            " Dropped files with refused rows: {} (↑/↓) ",
            self.files.len()
        );
        frame.render_widget(
            Paragraph::new(lines).block(Block::bordered().title(title)),
            area,
        );
    }

    fn draw_rows(&self, frame: &mut Frame, area: Rect, t: &Theme) {
        let Some(entry) = self.files.get(self.selected) else {
            return;
        };
        let width = area.width.saturating_sub(2) as usize;
        let report = self
            .report
            .as_ref()
            .filter(|(r, _)| entry.report.as_deref() == Some(r.as_str()))
            .map(|(_, r)| r);
        let mut lines = Vec::new();
        let report_path = match (report, &entry.report) {
            (Some(r), _) => r.report.clone(),
            (None, Some(r)) => self.full_path(r),
            (None, None) => String::new(),
        };
        lines.extend(labelled("report", &report_path, t, width));
        match entry.outcome {
            DropOutcome::Rejected => {
                if let Some(file) = &entry.archived_as {
                    lines.extend(labelled("file", &self.full_path(file), t, width));
                }
                if let Some(why) = &entry.note {
                    lines.extend(labelled("why", why, t, width));
                }
                lines.extend(labelled(
                    "fix",
                    "nothing from it was queued: fix the file and drop it again",
                    t,
                    width,
                ));
            }
            _ => {
                let copy = report
                    .and_then(|r| r.rejected_copy.clone())
                    .or_else(|| entry.rejected_copy.as_deref().map(|c| self.full_path(c)));
                if let Some(copy) = copy {
                    lines.extend(labelled("fix in", &copy, t, width));
                }
                lines.extend(labelled(
                    "then",
                    "drop that file again: only its rows are read (each has an _error note, \
                     ignored on reading)",
                    t,
                    width,
                ));
            }
        }
        lines.extend(labelled(
            "kept",
            &format!(
                "in {}/, outside the data dir, until retention (retain_synced_days) erases them",
                self.full_path(REJECTED_DIR)
            ),
            t,
            width,
        ));
        lines.push(Line::raw(""));
        match (report, &self.error) {
            (_, Some(e)) => lines.push(Line::from(Span::styled(
                format!(" cannot read the report: {e}"),
                t.error(),
            ))),
            (None, None) => lines.push(Line::from(Span::styled(" reading the report…", t.dim()))),
            (Some(r), None) if r.missing => lines.push(Line::from(Span::styled(
                " the report is no longer there (moved or deleted)",
                t.warn(),
            ))),
            (Some(r), None) => lines.extend(row_lines(r, t, width)),
        }
        let title = match entry.outcome {
            DropOutcome::Rejected => format!(" {}: not read ", entry.file),
            _ => format!(
                " {}: {} refused, not queued ",
                entry.file,
                plural(entry.rejected as usize, "row")
            ),
        };
        let skip = self.scroll.min(lines.len().saturating_sub(1));
        frame.render_widget(
            Paragraph::new(lines.split_off(skip))
                .block(Block::bordered().title(cut(&title, width))),
            area,
        );
    }
}

/// Each refused row: its position, then its reasons under one another (a hanging indent),
/// then how many more the report holds.
fn row_lines<'a>(r: &DropReport, t: &Theme, width: usize) -> Vec<Line<'a>> {
    let column = r
        .rows
        .iter()
        .map(|row| row.position.chars().count())
        .max()
        .unwrap_or(0)
        .min(24);
    let mut lines = Vec::new();
    for row in &r.rows {
        for (i, reason) in row.reasons.iter().enumerate() {
            let head = if i == 0 { row.position.as_str() } else { "" };
            lines.extend(hanging(head, reason, column, width, (t.dim(), t.error())));
        }
    }
    if r.more > 0 {
        lines.push(Line::from(Span::styled(
            format!(
                " … and {} more refused {}: see the report",
                r.more,
                if r.more == 1 { "row" } else { "rows" }
            ),
            t.dim(),
        )));
    }
    lines
}

/// A labelled value: the label in the first 8 columns, the value wrapped beside it.
fn labelled<'a>(name: &str, value: &str, t: &Theme, width: usize) -> Vec<Line<'a>> {
    hanging(name, value, 8, width, (t.dim(), Style::default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::tests::fixtures::drop_files;

    #[test]
    fn the_dashboard_counts_refused_rows_and_files_refused_whole() {
        // One file with 3 rows refused, one refused whole: the duplicate and the processed
        // files leave nothing for a person.
        assert_eq!(refused_counts(&drop_files()), (3, 2));
    }
}
