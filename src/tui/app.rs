//! The TUI's state and its two inputs: keys ([`App::handle_key`]) and what the daemon sends
//! ([`App::apply`]). Both answer with [`Effect`]s for the terminal loop to carry out; the
//! app itself does no I/O and reads no clock (time arrives as [`Incoming::Tick`]), so it is
//! unit-tested key by key.
//!
//! Every request carries a [`Purpose`] that comes back with its reply, so a page that
//! arrives after the filter changed is recognised as stale and dropped. Change events are
//! hints: they mark lists dirty, and the next tick reloads only what is on screen, at most
//! one request per list in flight (gitui's coalesced refresh).

use chrono::{DateTime, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::component::{help_only, hint, Action, Component, KeyHint, Save};
use super::paging::{Page, PageStart};
use super::screens::capture::CaptureForm;
use super::screens::conflicts::ConflictsView;
use super::screens::dashboard::DashboardView;
use super::screens::detail::DetailView;
use super::screens::queue::QueueView;
use super::screens::refused::RefusedView;
use super::screens::unlock::{PromptKey, UnlockPrompt};
use crate::contract::ErrorKind;
use crate::control::{ControlError, Event, Reply, Request, ResolveAction, StatusReport};
use crate::store::{Origin, Record, RecordId, RecordState, SubmitOutcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListId {
    Queue,
    Conflicts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageMove {
    Reset,
    Refresh,
    Forward,
    Back,
}

/// Why a request was sent; returned with its reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    Status,
    DropFiles,
    Page {
        list: ListId,
        generation: u64,
        mv: PageMove,
        after: Option<PageStart>,
    },
    Detail {
        id: RecordId,
    },
    Save {
        generation: u64,
    },
    Resolve {
        action: ResolveAction,
    },
    Unlock,
    /// The refused rows of the drop-folder file with this report.
    DropReport {
        report: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub purpose: Purpose,
    pub request: Request,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Send(Outgoing),
    Redraw,
    Quit,
}

/// Everything that reaches the app from outside besides keys.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Reply {
        purpose: Purpose,
        reply: Reply,
    },
    Event(Event),
    /// The clock, a few times a second.
    Tick(DateTime<Utc>),
    Connected {
        daemon_version: String,
    },
    /// The control connection broke; nothing more will arrive.
    Disconnected {
        reason: String,
    },
    Resize {
        width: u16,
        height: u16,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScreenId {
    Dashboard,
    Queue,
    Conflicts,
    Capture,
    Detail,
    /// The refused rows of dropped files, opened from the dashboard.
    Refused,
}

impl ScreenId {
    /// The screens Tab cycles through, in tab order.
    pub const TABS: [ScreenId; 4] = [
        ScreenId::Dashboard,
        ScreenId::Queue,
        ScreenId::Conflicts,
        ScreenId::Capture,
    ];

    pub fn title(self) -> &'static str {
        match self {
            ScreenId::Dashboard => "Dashboard",
            ScreenId::Queue => "Queue",
            ScreenId::Conflicts => "Conflicts",
            ScreenId::Capture => "Capture",
            ScreenId::Detail => "Detail",
            ScreenId::Refused => "Refused rows",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    Connecting,
    Connected { daemon_version: String },
    Lost { reason: String },
}

/// What a confirmed popup does.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfirmAction {
    Quit,
    Resolve {
        ids: Vec<RecordId>,
        action: ResolveAction,
    },
    ResolveMany {
        state: RecordState,
        error_type: Option<ErrorKind>,
        action: ResolveAction,
    },
    DiscardDraft,
    ReplaceDraft(Box<Record>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Confirm {
    pub message: String,
    pub on_yes: ConfirmAction,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Overlay {
    Help,
    Confirm(Confirm),
    Unlock(UnlockPrompt),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Error,
}

/// A one-line message in the footer until the next key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub level: Level,
    pub text: String,
}

/// Rows of chrome around every screen: the tab bar and the footer.
pub const CHROME_ROWS: u16 = 2;

pub const GLOBAL_HINTS: [KeyHint; 10] = [
    hint("?", "help"),
    hint("q", "quit"),
    help_only("Tab/S-Tab", "next/previous screen"),
    help_only("F1", "help (also in the form)"),
    help_only("1-4", "go to screen 1-4"),
    help_only("c", "capture a new customer"),
    help_only("Esc", "back"),
    help_only("Ctrl+R", "reload from the daemon"),
    help_only("u", "unlock a locked store"),
    help_only("Ctrl+C", "quit (asks if input unsaved)"),
];

pub struct App {
    pub screen: ScreenId,
    back_to: Vec<ScreenId>,
    pub overlay: Option<Overlay>,
    pub status: Option<StatusReport>,
    pub connection: Connection,
    pub now: DateTime<Utc>,
    pub notice: Option<Notice>,
    pub dashboard: DashboardView,
    pub queue: QueueView,
    pub detail: DetailView,
    pub conflicts: ConflictsView,
    pub capture: CaptureForm,
    pub refused: RefusedView,
    /// No daemon was running: the TUI runs the engine itself until it quits.
    pub in_process: bool,
    queue_dirty: bool,
    conflicts_dirty: bool,
    detail_dirty: bool,
    status_dirty: bool,
    status_in_flight: bool,
    /// The drop-folder history is fetched with the status, only while the dashboard shows.
    drops_dirty: bool,
    drops_in_flight: bool,
    save_generation: u64,
}

impl App {
    /// An app for a terminal `height` rows tall (lists fetch one screenful per page).
    pub fn new(now: DateTime<Utc>, height: u16) -> App {
        let body = height.saturating_sub(CHROME_ROWS);
        App {
            screen: ScreenId::Dashboard,
            back_to: Vec::new(),
            overlay: None,
            status: None,
            connection: Connection::Connecting,
            in_process: false,
            now,
            notice: None,
            dashboard: DashboardView::default(),
            queue: QueueView::new(QueueView::rows_for(body)),
            detail: DetailView::default(),
            conflicts: ConflictsView::new(ConflictsView::rows_for(body)),
            capture: CaptureForm::new(),
            refused: RefusedView::default(),
            queue_dirty: false,
            conflicts_dirty: false,
            detail_dirty: false,
            status_dirty: false,
            status_in_flight: false,
            drops_dirty: false,
            drops_in_flight: false,
            save_generation: 0,
        }
    }

    /// The first requests: status and the first page of each list.
    pub fn start(&mut self) -> Vec<Effect> {
        let mut fx = vec![self.request_status()];
        fx.push(Effect::Send(self.queue.list.window.reset(None)));
        let filter = self.conflicts.list.window.filter();
        fx.push(Effect::Send(self.conflicts.list.window.reset(filter)));
        fx.extend(self.request_drops());
        fx.retain(|e| e != &Effect::Redraw);
        fx
    }

    /// The status, and with it the drop-folder history when the dashboard shows it.
    fn refresh_status(&mut self) -> Vec<Effect> {
        let mut fx = vec![self.request_status()];
        fx.extend(self.request_drops());
        fx
    }

    /// Coalesced like the lists: at most one in flight, one more remembered; while the
    /// dashboard is hidden it is only marked due.
    fn request_drops(&mut self) -> Option<Effect> {
        if self.screen != ScreenId::Dashboard || self.drops_in_flight {
            self.drops_dirty = true;
            return None;
        }
        self.drops_in_flight = true;
        self.drops_dirty = false;
        Some(Effect::Send(Outgoing {
            purpose: Purpose::DropFiles,
            request: Request::DropFiles,
        }))
    }

    fn request_status(&mut self) -> Effect {
        if self.status_in_flight {
            self.status_dirty = true;
            return Effect::Redraw;
        }
        self.status_in_flight = true;
        self.status_dirty = false;
        Effect::Send(Outgoing {
            purpose: Purpose::Status,
            request: Request::Status,
        })
    }

    fn component(&mut self) -> &mut dyn Component {
        match self.screen {
            ScreenId::Dashboard => &mut self.dashboard,
            ScreenId::Queue => &mut self.queue,
            ScreenId::Conflicts => &mut self.conflicts,
            ScreenId::Capture => &mut self.capture,
            ScreenId::Detail => &mut self.detail,
            ScreenId::Refused => &mut self.refused,
        }
    }

    /// The current screen's hints followed by the global ones: the footer and `?` help.
    pub fn hints(&self) -> Vec<KeyHint> {
        let mut hints = match self.screen {
            ScreenId::Dashboard => self.dashboard.hints(),
            ScreenId::Queue => self.queue.hints(),
            ScreenId::Conflicts => self.conflicts.hints(),
            ScreenId::Capture => self.capture.hints(),
            ScreenId::Detail => self.detail.hints(),
            ScreenId::Refused => self.refused.hints(),
        };
        if !self.captures_text() {
            // While the store is locked, unlocking is the one thing to do: in the footer too.
            let locked = self.locked();
            hints.extend(GLOBAL_HINTS.iter().map(|h| match h.keys {
                "u" if locked => hint("u", "unlock"),
                _ => *h,
            }));
        }
        hints
    }

    /// Whether the daemon said its store is locked.
    pub fn locked(&self) -> bool {
        self.status.as_ref().is_some_and(|s| s.locked)
    }

    pub fn captures_text(&self) -> bool {
        match self.screen {
            ScreenId::Queue => self.queue.captures_text(),
            ScreenId::Conflicts => self.conflicts.captures_text(),
            ScreenId::Capture => self.capture.captures_text(),
            _ => false,
        }
    }

    pub fn handle_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        self.notice = None;
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match &self.overlay {
            Some(Overlay::Confirm(_)) => return self.confirm_key(key),
            Some(Overlay::Unlock(_)) => return self.unlock_key(key),
            Some(Overlay::Help) => {
                if matches!(
                    key.code,
                    KeyCode::Esc | KeyCode::F(1) | KeyCode::Char('?' | 'q')
                ) {
                    self.overlay = None;
                }
                return vec![Effect::Redraw];
            }
            None => {}
        }
        if ctrl && key.code == KeyCode::Char('c') {
            return self.ask_quit();
        }
        if ctrl && key.code == KeyCode::Char('r') {
            return self.reload();
        }
        match self.component().handle_key(key) {
            Action::Unhandled => self.global_key(key),
            action => self.dispatch(action),
        }
    }

    fn global_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        match key.code {
            KeyCode::Char('q') => return self.ask_quit(),
            KeyCode::Char('?') | KeyCode::F(1) => self.overlay = Some(Overlay::Help),
            KeyCode::Tab => return self.switch_tab(1),
            KeyCode::BackTab => return self.switch_tab(ScreenId::TABS.len() - 1),
            KeyCode::Char(c @ '1'..='4') => {
                let i = c as usize - '1' as usize;
                return self.go(ScreenId::TABS[i]);
            }
            KeyCode::Char('c') => return self.go(ScreenId::Capture),
            KeyCode::Char('u') if self.locked() => {
                self.overlay = Some(Overlay::Unlock(UnlockPrompt::default()))
            }
            KeyCode::Char('u') => self.notice("the store is not locked", Level::Info),
            KeyCode::Esc => return self.back(),
            _ => return Vec::new(),
        }
        vec![Effect::Redraw]
    }

    fn switch_tab(&mut self, step: usize) -> Vec<Effect> {
        let i = ScreenId::TABS
            .iter()
            .position(|s| *s == self.screen)
            .unwrap_or(0);
        self.go(ScreenId::TABS[(i + step) % ScreenId::TABS.len()])
    }

    /// Shows a top-level screen, reloading its list if it changed while hidden.
    fn go(&mut self, screen: ScreenId) -> Vec<Effect> {
        self.back_to.clear();
        self.screen = screen;
        let mut fx = self.refresh_visible();
        fx.push(Effect::Redraw);
        fx
    }

    fn back(&mut self) -> Vec<Effect> {
        let to = self.back_to.pop().unwrap_or(ScreenId::Dashboard);
        self.screen = to;
        let mut fx = self.refresh_visible();
        fx.push(Effect::Redraw);
        fx
    }

    fn ask_quit(&mut self) -> Vec<Effect> {
        if self.capture.has_unsaved() {
            self.overlay = Some(Overlay::Confirm(Confirm {
                message: "The capture form holds input that is not saved. Quit and lose it?".into(),
                on_yes: ConfirmAction::Quit,
            }));
            vec![Effect::Redraw]
        } else {
            vec![Effect::Quit]
        }
    }

    fn reload(&mut self) -> Vec<Effect> {
        self.queue_dirty = true;
        self.conflicts_dirty = true;
        self.detail_dirty = true;
        let mut fx = self.refresh_status();
        fx.extend(self.refresh_visible());
        fx.push(Effect::Redraw);
        fx
    }

    fn unlock_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let Some(Overlay::Unlock(prompt)) = &mut self.overlay else {
            return Vec::new();
        };
        match prompt.handle_key(key) {
            PromptKey::Ignored => Vec::new(),
            PromptKey::Edited => vec![Effect::Redraw],
            // Dropping the prompt wipes whatever was typed.
            PromptKey::Cancel => {
                self.overlay = None;
                vec![Effect::Redraw]
            }
            PromptKey::Submit(passphrase) => vec![
                Effect::Send(Outgoing {
                    purpose: Purpose::Unlock,
                    request: Request::Unlock { passphrase },
                }),
                Effect::Redraw,
            ],
        }
    }

    fn confirm_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let Some(Overlay::Confirm(confirm)) = self.overlay.take() else {
            return Vec::new();
        };
        match key.code {
            KeyCode::Char('y' | 'Y') | KeyCode::Enter => {
                let mut fx = self.confirmed(confirm.on_yes);
                fx.push(Effect::Redraw);
                fx
            }
            KeyCode::Char('n' | 'N') | KeyCode::Esc => vec![Effect::Redraw],
            _ => {
                self.overlay = Some(Overlay::Confirm(confirm));
                Vec::new()
            }
        }
    }

    fn confirmed(&mut self, action: ConfirmAction) -> Vec<Effect> {
        match action {
            ConfirmAction::Quit => vec![Effect::Quit],
            ConfirmAction::Resolve { ids, action } => self.send_resolve(ids, action),
            ConfirmAction::ResolveMany {
                state,
                error_type,
                action,
            } => self.send_resolve_many(state, error_type, action),
            ConfirmAction::DiscardDraft => {
                self.capture = CaptureForm::new();
                self.notice("unsaved input discarded", Level::Info);
                Vec::new()
            }
            ConfirmAction::ReplaceDraft(record) => self.open_edit(*record),
        }
    }

    fn dispatch(&mut self, action: Action) -> Vec<Effect> {
        let mut fx = match action {
            Action::Unhandled | Action::Handled => Vec::new(),
            Action::Send(out) => vec![Effect::Send(out)],
            Action::Open(id) => {
                if self.screen != ScreenId::Detail {
                    self.back_to.push(self.screen);
                }
                self.screen = ScreenId::Detail;
                vec![Effect::Send(self.detail.open(id))]
            }
            Action::Back => return self.back(),
            Action::ShowRefused => {
                if self.screen != ScreenId::Refused {
                    self.back_to.push(self.screen);
                }
                self.screen = ScreenId::Refused;
                let folder = self.dashboard.folder.clone();
                self.refused
                    .open(&self.dashboard.drops, folder)
                    .map(Effect::Send)
                    .into_iter()
                    .collect()
            }
            Action::Edit(record) => {
                if self.capture.has_unsaved() && self.capture.editing() != Some(record.id) {
                    self.overlay = Some(Overlay::Confirm(Confirm {
                        message: "The capture form holds unsaved input. Replace it with this \
                                  record?"
                            .into(),
                        on_yes: ConfirmAction::ReplaceDraft(record),
                    }));
                    Vec::new()
                } else {
                    self.open_edit(*record)
                }
            }
            Action::Resolve { ids, action } if asks_first(action) => {
                let whom = match ids.as_slice() {
                    [id] => format!("record {}", id.short()),
                    _ => plural(ids.len(), "record"),
                };
                self.overlay = Some(Overlay::Confirm(Confirm {
                    message: confirm_question(action, &whom),
                    on_yes: ConfirmAction::Resolve { ids, action },
                }));
                Vec::new()
            }
            Action::Resolve { ids, action } => self.send_resolve(ids, action),
            Action::ResolveMany {
                state,
                error_type,
                action,
            } if asks_first(action) => {
                let what = error_type.map_or(String::new(), |k| format!(" with error {k}"));
                self.overlay = Some(Overlay::Confirm(Confirm {
                    message: confirm_question(action, &format!("every {state} record{what}")),
                    on_yes: ConfirmAction::ResolveMany {
                        state,
                        error_type,
                        action,
                    },
                }));
                Vec::new()
            }
            Action::ResolveMany {
                state,
                error_type,
                action,
            } => self.send_resolve_many(state, error_type, action),
            Action::Save(save) => {
                self.save_generation += 1;
                let generation = self.save_generation;
                self.capture.saving(generation);
                let request = match save {
                    Save::New { body } => Request::Submit {
                        body,
                        origin: Origin::Capture,
                    },
                    Save::Edit { id, changes } => Request::Edit {
                        id: id.to_string(),
                        changes,
                    },
                };
                vec![Effect::Send(Outgoing {
                    purpose: Purpose::Save { generation },
                    request,
                })]
            }
            Action::DiscardDraft => {
                self.overlay = Some(Overlay::Confirm(Confirm {
                    message: "Throw away the form's unsaved input?".into(),
                    on_yes: ConfirmAction::DiscardDraft,
                }));
                Vec::new()
            }
        };
        fx.push(Effect::Redraw);
        fx
    }

    fn open_edit(&mut self, record: Record) -> Vec<Effect> {
        self.capture = CaptureForm::edit(&record);
        if self.screen != ScreenId::Capture {
            self.back_to.push(self.screen);
        }
        self.screen = ScreenId::Capture;
        Vec::new()
    }

    fn send_resolve(&mut self, ids: Vec<RecordId>, action: ResolveAction) -> Vec<Effect> {
        self.conflicts.clear_marks();
        ids.into_iter()
            .map(|id| {
                Effect::Send(Outgoing {
                    purpose: Purpose::Resolve { action },
                    request: Request::Resolve {
                        id: id.to_string(),
                        action,
                    },
                })
            })
            .collect()
    }

    fn send_resolve_many(
        &mut self,
        state: RecordState,
        error_type: Option<ErrorKind>,
        action: ResolveAction,
    ) -> Vec<Effect> {
        self.conflicts.clear_marks();
        vec![Effect::Send(Outgoing {
            purpose: Purpose::Resolve { action },
            request: Request::ResolveMany {
                state,
                error_type,
                action,
            },
        })]
    }

    /// Says that this TUI runs the engine itself (no daemon was running), so records are
    /// synced only while it is open.
    pub fn mark_in_process(&mut self, message: &str) {
        self.in_process = true;
        self.notice(message, Level::Info);
    }

    fn notice(&mut self, text: impl Into<String>, level: Level) {
        self.notice = Some(Notice {
            level,
            text: text.into(),
        });
    }

    /// Takes a reply, an event, a tick or a connection change.
    pub fn apply(&mut self, incoming: Incoming) -> Vec<Effect> {
        let mut fx = Vec::new();
        match incoming {
            Incoming::Reply { purpose, reply } => fx.extend(self.apply_reply(purpose, reply)),
            Incoming::Event(Event::Status(s)) => self.status = Some(s),
            Incoming::Event(Event::RecordChanged { id, .. }) => {
                self.queue_dirty = true;
                self.conflicts_dirty = true;
                self.status_dirty = true;
                if self.detail.id() == Some(id) {
                    self.detail_dirty = true;
                }
                // Redrawn when the tick reloads what is visible.
                return fx;
            }
            Incoming::Tick(now) => {
                let second_changed = now.timestamp() != self.now.timestamp();
                self.now = now;
                if let Some(s) = &self.status {
                    self.dashboard.sample(now, s.synced);
                }
                if self.status_dirty {
                    fx.extend(self.refresh_status());
                }
                fx.extend(self.refresh_visible());
                if !second_changed {
                    fx.retain(|e| e != &Effect::Redraw);
                    if fx.is_empty() {
                        return fx;
                    }
                }
            }
            Incoming::Connected { daemon_version } => {
                self.connection = Connection::Connected { daemon_version }
            }
            Incoming::Disconnected { reason } => self.connection = Connection::Lost { reason },
            Incoming::Resize { height, .. } => fx.extend(self.resize(height)),
        }
        fx.retain(|e| e != &Effect::Redraw);
        fx.push(Effect::Redraw);
        fx
    }

    fn resize(&mut self, height: u16) -> Vec<Effect> {
        let body = height.saturating_sub(CHROME_ROWS);
        let q = self.queue.list.window.set_limit(QueueView::rows_for(body));
        let c = self
            .conflicts
            .list
            .window
            .set_limit(ConflictsView::rows_for(body));
        q.into_iter().chain(c).map(Effect::Send).collect()
    }

    /// Reloads, at most once each, the dirty lists that are on screen, and a list whose
    /// order the daemon is still sorting (asked again each tick until it is there).
    fn refresh_visible(&mut self) -> Vec<Effect> {
        let mut fx = Vec::new();
        match self.screen {
            ScreenId::Queue if self.queue_dirty || self.queue.list.window.awaits_sort() => {
                self.queue_dirty = false;
                fx.extend(self.queue.list.window.refresh().map(Effect::Send));
            }
            ScreenId::Conflicts
                if self.conflicts_dirty || self.conflicts.list.window.awaits_sort() =>
            {
                self.conflicts_dirty = false;
                fx.extend(self.conflicts.list.window.refresh().map(Effect::Send));
            }
            ScreenId::Dashboard if self.drops_dirty => fx.extend(self.request_drops()),
            ScreenId::Detail if self.detail_dirty => {
                self.detail_dirty = false;
                fx.extend(self.detail.reload().map(Effect::Send));
            }
            _ => {}
        }
        fx
    }

    fn apply_reply(&mut self, purpose: Purpose, reply: Reply) -> Vec<Effect> {
        let mut fx = Vec::new();
        match (purpose, reply) {
            (Purpose::Status, reply) => {
                self.status_in_flight = false;
                match reply {
                    Reply::Status(s) => self.status = Some(s),
                    Reply::Error(e) => self.error_notice(&e),
                    other => self.unexpected(&other),
                }
                if self.status_dirty {
                    fx.push(self.request_status());
                }
            }
            (Purpose::DropFiles, reply) => {
                self.drops_in_flight = false;
                match reply {
                    Reply::DropFiles { files, folder } => {
                        self.dashboard.drops = files;
                        self.dashboard.folder = folder;
                    }
                    Reply::Error(e) => self.error_notice(&e),
                    other => self.unexpected(&other),
                }
                if self.drops_dirty {
                    fx.extend(self.request_drops());
                }
            }
            (
                Purpose::Page {
                    list,
                    generation,
                    mv,
                    after,
                },
                reply,
            ) => {
                let page = match reply {
                    Reply::Records {
                        records,
                        resume_after,
                        next,
                        sorting,
                    } => Page::from_reply(records, resume_after, next, sorting),
                    Reply::Error(e) => {
                        self.error_notice(&e);
                        Page::default()
                    }
                    other => {
                        self.unexpected(&other);
                        Page::default()
                    }
                };
                let view = match list {
                    ListId::Queue => &mut self.queue.list,
                    ListId::Conflicts => &mut self.conflicts.list,
                };
                fx.extend(view.accept(generation, mv, after, page).map(Effect::Send));
            }
            (Purpose::Detail { id }, Reply::Record { record }) => self.detail.loaded(id, *record),
            (Purpose::Save { generation }, Reply::Queued(q)) => {
                if self.capture.saved(generation, q) {
                    let text =
                        match q.outcome() {
                            SubmitOutcome::Unchanged => format!(
                                "saved: matches record revision {} as it is; nothing new to send",
                                q.revision
                            ),
                            o => format!(
                            "saved: record {}, revision {} queued (flushed to disk by the daemon)",
                            if o == SubmitOutcome::Created { "created" } else { "updated" },
                            q.revision
                        ),
                        };
                    self.notice(text, Level::Info);
                    self.queue_dirty = true;
                    fx.extend(self.refresh_status());
                }
            }
            (Purpose::Save { generation }, Reply::Error(e)) => {
                self.capture.failed(generation, &e);
                self.error_notice(&e);
            }
            (Purpose::Resolve { action }, Reply::Resolved { ids }) => {
                self.notice(
                    format!("{} {}", plural(ids.len(), "record"), action.done()),
                    Level::Info,
                );
                self.queue_dirty = true;
                self.conflicts_dirty = true;
                self.detail_dirty = self.detail.id().is_some_and(|d| ids.contains(&d));
                fx.extend(self.refresh_status());
                fx.extend(self.refresh_visible());
            }
            (Purpose::DropReport { report }, Reply::DropReport(r)) => {
                self.refused.loaded(&report, Ok(r))
            }
            (Purpose::DropReport { report }, Reply::Error(e)) => {
                self.refused.loaded(&report, Err(e.message))
            }
            (Purpose::Unlock, Reply::Status(s)) => {
                self.status = Some(s);
                if matches!(self.overlay, Some(Overlay::Unlock(_))) {
                    self.overlay = None;
                }
                self.notice("unlocked: sending resumes", Level::Info);
            }
            (Purpose::Unlock, Reply::Error(e)) => match &mut self.overlay {
                // The prompt stays open, emptied, with the daemon's reason.
                Some(Overlay::Unlock(prompt)) => {
                    prompt.sending = false;
                    prompt.error = Some(format!("daemon: {}", e.message));
                }
                _ => self.error_notice(&e),
            },
            (_, Reply::Error(e)) => self.error_notice(&e),
            (_, other) => self.unexpected(&other),
        }
        fx
    }

    fn error_notice(&mut self, e: &ControlError) {
        self.notice(format!("daemon: {}", e.message), Level::Error);
    }

    fn unexpected(&mut self, reply: &Reply) {
        let kind = serde_json::to_value(reply)
            .ok()
            .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
            .unwrap_or_default();
        self.notice(
            format!("the daemon sent an unexpected {kind} reply"),
            Level::Error,
        );
    }
}

/// Whether a resolve action goes through the confirm popup first: a discard (the record is
/// never sent) and anything that overwrites a customer someone else put on the server.
fn asks_first(action: ResolveAction) -> bool {
    action == ResolveAction::Discard || action.overwrites_existing()
}

/// The confirm popup's question for an action that asks first, about `whom`.
fn confirm_question(action: ResolveAction, whom: &str) -> String {
    match action {
        ResolveAction::Discard => {
            format!("Discard {whom}? Discarded records are never sent.")
        }
        _ => format!(
            "Update the existing customer with the fields of {whom}? Its values on the server \
             are replaced by these (every ≠ field)."
        ),
    }
}

pub fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
