//! Keyset paging over the daemon's record list, so the TUI never holds more than one screen
//! of records however many the store has. The daemon answers `list {state, after, limit,
//! sort}`; a page is named by its start ([`PageStart`]: the id after which it begins and, in
//! a sorted order, that record's sort key), and the starts of the pages before it are kept to
//! page back (the protocol has no `before`).
//!
//! [`ListView`] adds what the queue and conflicts screens share on top of a page: the
//! selection, the `/` search and the sort. While a search is typed it narrows the loaded
//! page at once; Enter sends it with every page request (`list {query}`), so the daemon
//! searches all records. The sort (`s`: queue order, name, state, newest change) is sent with
//! every page request too and orders the whole list, never the page: the daemon walks its
//! state index for the state order, and builds a sorted view in its memory for name and
//! newest change (names are sealed at rest and have no index). In a sorted order the next
//! page starts where the daemon's `next` says, not at the last row shown: a record renamed
//! since the daemon sorted keeps its old place until the order is rebuilt. While the daemon
//! builds the order its replies say how far it is ("sorting N of M…"), and the window asks
//! again on each tick until the order is there.
//!
//! The daemon's search reads a bounded number of records per request; a page it cut short
//! comes with `resume_after`, so it is not the last: paging on continues from there. A
//! searched page with no match but a `resume_after` is asked for again from there, up to
//! [`AUTO_CONTINUE_MAX`] times per key press, so a far-away match is reached without
//! holding the daemon in one long request, and a search with no match anywhere stops.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::app::{ListId, Outgoing, PageMove, Purpose};
use super::component::Action;
use crate::contract::ErrorKind;
use crate::control::{ListSort, Request, SortCursor, SortKey, SortProgress};
use crate::store::{Record, RecordError, RecordId, RecordState};

/// Where a page begins: after the record `id`, whose key in the list's sort is `key` (none
/// in queue order, where the id alone is the position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageStart {
    pub id: RecordId,
    pub key: Option<SortKey>,
}

impl PageStart {
    fn id(id: RecordId) -> Self {
        PageStart { id, key: None }
    }
}

impl From<SortCursor> for PageStart {
    fn from(c: SortCursor) -> Self {
        PageStart {
            id: c.id,
            key: Some(c.key),
        }
    }
}

/// Chunks without a match a searched page asks for on its own before waiting for a key.
pub const AUTO_CONTINUE_MAX: usize = 20;

/// One page of a list and the cursors to move between pages.
#[derive(Debug, Clone)]
pub struct Window {
    list: ListId,
    filter: Option<RecordState>,
    /// The search the daemon applies to every page of this list.
    query: Option<String>,
    /// The order the daemon serves the whole list in.
    sort: ListSort,
    cursor: Option<PageStart>,
    trail: Vec<Option<PageStart>>,
    rows: Vec<Record>,
    limit: usize,
    generation: u64,
    in_flight: bool,
    refresh_wanted: bool,
    at_end: bool,
    /// Queue order: where the daemon's search stopped reading when it cut this page short.
    /// Other orders: where the next page starts (the daemon's `next`; none on the last).
    resume: Option<PageStart>,
    /// Chunks asked for on their own since the last key press.
    continued: usize,
    /// The automatic continuations gave up: chunks read without a match, and where the
    /// next page forward carries on.
    stalled: Option<(usize, PageStart)>,
    /// The daemon is still building the sorted order (from the last reply).
    sorting: Option<SortProgress>,
}

/// Where the selection goes after a page arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Landing {
    Top,
    Bottom,
    Keep,
}

impl Window {
    pub fn new(list: ListId, filter: Option<RecordState>, limit: usize) -> Self {
        Window {
            list,
            filter,
            query: None,
            sort: ListSort::Queue,
            cursor: None,
            trail: Vec::new(),
            rows: Vec::new(),
            limit: limit.max(1),
            generation: 0,
            in_flight: false,
            refresh_wanted: false,
            at_end: false,
            resume: None,
            continued: 0,
            stalled: None,
            sorting: None,
        }
    }

    pub fn rows(&self) -> &[Record] {
        &self.rows
    }

    pub fn filter(&self) -> Option<RecordState> {
        self.filter
    }

    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// Back to the first page of the records matching `query` (none: every record).
    pub fn search(&mut self, query: Option<String>) -> Outgoing {
        self.query = query;
        self.reset(self.filter)
    }

    pub fn sort(&self) -> ListSort {
        self.sort
    }

    /// Back to the first page, in another order (filter and search kept).
    pub fn sort_by(&mut self, sort: ListSort) -> Outgoing {
        self.sort = sort;
        self.reset(self.filter)
    }

    /// How far the daemon is in building this list's order, while it is.
    pub fn sorting(&self) -> Option<SortProgress> {
        self.sorting
    }

    /// The daemon is sorting and no request is out: time to ask again (one per tick, never
    /// back to back).
    pub fn awaits_sort(&self) -> bool {
        self.sorting.is_some() && !self.in_flight
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// 1 for the first page.
    pub fn page_number(&self) -> usize {
        self.trail.len() + 1
    }

    pub fn loading(&self) -> bool {
        self.in_flight
    }

    /// Whether a page forward is known to be empty.
    pub fn at_end(&self) -> bool {
        let no_more = match self.sort {
            ListSort::Queue => self.rows.len() < self.limit && self.resume.is_none(),
            _ => self.resume.is_none(),
        };
        self.stalled.is_none() && (self.at_end || no_more)
    }

    /// Where the next page forward starts: where a stalled search stopped; in queue order
    /// where the daemon stopped reading a short page, else after the last row; in a sorted
    /// order where the daemon said.
    fn next_start(&self) -> Option<PageStart> {
        if let Some((_, r)) = &self.stalled {
            return Some(r.clone());
        }
        match self.sort {
            ListSort::Queue => {
                let short = self.rows.len() < self.limit;
                self.resume
                    .clone()
                    .filter(|_| short)
                    .or(self.rows.last().map(|r| PageStart::id(r.id)))
            }
            _ => self.resume.clone(),
        }
    }

    /// Search chunks read so far for the request in flight (0 when it is a plain one).
    pub fn continued(&self) -> usize {
        self.continued
    }

    /// Chunks read without a match after which the window waits for a key.
    pub fn stalled(&self) -> Option<usize> {
        self.stalled.as_ref().map(|(n, _)| *n)
    }

    /// Whether the page is short only because the daemon's search stopped reading.
    pub fn more_further(&self) -> bool {
        !self.at_end() && self.rows.len() < self.limit
    }

    /// A request from a key press (or a refresh): the automatic continuations start over.
    fn user_request(&mut self, mv: PageMove, after: Option<PageStart>) -> Outgoing {
        self.continued = 0;
        self.stalled = None;
        self.request(mv, after)
    }

    fn request(&mut self, mv: PageMove, after: Option<PageStart>) -> Outgoing {
        self.in_flight = true;
        let (id, key) = match &after {
            Some(p) => (Some(p.id), p.key.clone()),
            None => (None, None),
        };
        Outgoing {
            purpose: Purpose::Page {
                list: self.list,
                generation: self.generation,
                mv,
                after,
            },
            request: Request::List {
                state: self.filter,
                after: id,
                limit: self.limit,
                query: self.query.clone(),
                sort: self.sort,
                after_key: key,
            },
        }
    }

    /// Back to the first page, with a new filter (the search is kept); replies for the old
    /// filter are ignored.
    pub fn reset(&mut self, filter: Option<RecordState>) -> Outgoing {
        self.generation += 1;
        self.filter = filter;
        self.trail.clear();
        self.cursor = None;
        self.at_end = false;
        self.refresh_wanted = false;
        self.resume = None;
        self.sorting = None;
        self.user_request(PageMove::Reset, None)
    }

    pub fn forward(&mut self) -> Option<Outgoing> {
        if self.in_flight || self.at_end() {
            return None;
        }
        let after = self.next_start();
        Some(self.user_request(PageMove::Forward, after))
    }

    pub fn back(&mut self) -> Option<Outgoing> {
        if self.in_flight {
            return None;
        }
        let after = self.trail.last()?.clone();
        Some(self.user_request(PageMove::Back, after))
    }

    /// Reloads the page shown; coalesced: while a request is out, one more is remembered.
    pub fn refresh(&mut self) -> Option<Outgoing> {
        if self.in_flight {
            self.refresh_wanted = true;
            return None;
        }
        let stalled = self.stalled.clone();
        let out = self.user_request(PageMove::Refresh, self.cursor.clone());
        // A refresh does not forget how far a stalled search has read.
        self.stalled = stalled;
        Some(out)
    }

    pub fn set_limit(&mut self, limit: usize) -> Option<Outgoing> {
        let limit = limit.max(1);
        if limit == self.limit {
            return None;
        }
        self.limit = limit;
        self.refresh()
    }

    /// Takes a page the daemon sent. Returns where the selection goes (none for a stale
    /// reply) and a follow-up request, if one is due.
    pub fn accept(
        &mut self,
        generation: u64,
        mv: PageMove,
        after: Option<PageStart>,
        page: Page,
    ) -> (Option<Landing>, Option<Outgoing>) {
        if generation != self.generation {
            return (None, None);
        }
        self.in_flight = false;
        let Page {
            records,
            resume,
            sorting,
        } = page;
        self.sorting = sorting;
        if sorting.is_some() && records.is_empty() {
            // Nothing sorted yet: stay where we are; the tick asks again.
            if mv == PageMove::Reset {
                self.cursor = after;
                self.rows.clear();
                self.resume = None;
            }
            let follow = self.refresh_wanted_follow();
            return (Some(Landing::Keep), follow);
        }
        if let (true, Some(r), PageMove::Reset | PageMove::Forward) =
            (records.is_empty(), resume.clone(), mv)
        {
            // No match in this chunk, but the search has not reached the end.
            if self.continued < AUTO_CONTINUE_MAX {
                self.continued += 1;
                return (None, Some(self.request(mv, Some(r))));
            }
            self.stalled = Some((self.continued + 1, r));
            self.continued = 0;
            if mv == PageMove::Reset {
                // Page 1 stays the start of the list (its cursor `None`), shown empty, so a
                // refresh reads one chunk rather than starting the continuations over.
                self.rows.clear();
                self.resume = None;
            }
            let follow = self.refresh_wanted_follow();
            return (Some(Landing::Keep), follow);
        }
        self.continued = 0;
        let landing = match mv {
            PageMove::Reset => {
                self.cursor = after;
                self.rows = records;
                self.resume = resume;
                Landing::Top
            }
            PageMove::Refresh if records.is_empty() && self.cursor.is_some() => {
                // Everything on this page left the filter (a drained queue): start over.
                self.trail.clear();
                self.cursor = None;
                return (
                    Some(Landing::Top),
                    Some(self.request(PageMove::Reset, None)),
                );
            }
            PageMove::Refresh => {
                self.rows = records;
                self.at_end = false;
                self.resume = resume;
                Landing::Keep
            }
            PageMove::Forward if records.is_empty() => {
                self.at_end = true;
                Landing::Keep
            }
            PageMove::Forward => {
                self.trail.push(self.cursor.take());
                self.cursor = after;
                self.rows = records;
                self.resume = resume;
                Landing::Top
            }
            PageMove::Back => {
                self.trail.pop();
                self.cursor = after;
                self.rows = records;
                self.resume = resume;
                self.at_end = false;
                Landing::Bottom
            }
        };
        (Some(landing), self.refresh_wanted_follow())
    }

    fn refresh_wanted_follow(&mut self) -> Option<Outgoing> {
        if std::mem::take(&mut self.refresh_wanted) {
            self.refresh()
        } else {
            None
        }
    }
}

/// One reply to a page request, as the window takes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    pub records: Vec<Record>,
    /// Queue order: the daemon's `resume_after`; other orders: its `next`.
    pub resume: Option<PageStart>,
    pub sorting: Option<SortProgress>,
}

impl Page {
    /// The page from a `records` reply's members.
    pub fn from_reply(
        records: Vec<Record>,
        resume_after: Option<RecordId>,
        next: Option<SortCursor>,
        sorting: Option<SortProgress>,
    ) -> Self {
        Page {
            records,
            resume: next
                .map(PageStart::from)
                .or(resume_after.map(PageStart::id)),
            sorting,
        }
    }
}

pub fn sort_label(sort: ListSort) -> &'static str {
    match sort {
        ListSort::Queue => "queue order",
        ListSort::Name => "name",
        ListSort::State => "state",
        ListSort::NewestChange => "newest change",
    }
}

/// The order `s` moves to.
fn next_sort(sort: ListSort) -> ListSort {
    match sort {
        ListSort::Queue => ListSort::Name,
        ListSort::Name => ListSort::State,
        ListSort::State => ListSort::NewestChange,
        ListSort::NewestChange => ListSort::Queue,
    }
}

/// The API error type of a record's last error, if the API gave one.
pub fn error_kind(r: &Record) -> Option<ErrorKind> {
    match &r.last_error {
        Some(RecordError::Api { error }) => Some(error.kind()),
        _ => None,
    }
}

/// A page plus selection, search and sort.
#[derive(Debug, Clone)]
pub struct ListView {
    pub window: Window,
    /// The state filter cycles through these (`None` is every state).
    filters: Vec<Option<RecordState>>,
    pub search: String,
    pub searching: bool,
    pub error_filter: Option<ErrorKind>,
    selected: usize,
}

impl ListView {
    pub fn new(window: Window, filters: Vec<Option<RecordState>>) -> Self {
        ListView {
            window,
            filters,
            search: String::new(),
            searching: false,
            error_filter: None,
            selected: 0,
        }
    }

    /// The loaded page as shown, in the daemon's order: searched, filtered by error type.
    pub fn view(&self) -> Vec<&Record> {
        let needle = self.search.trim().to_lowercase();
        self.window
            .rows()
            .iter()
            .filter(|r| needle.is_empty() || matches_search(r, &needle))
            .filter(|r| self.error_filter.is_none() || error_kind(r) == self.error_filter)
            .collect()
    }

    pub fn sort(&self) -> ListSort {
        self.window.sort()
    }

    pub fn selected_index(&self) -> usize {
        self.selected
    }

    pub fn selected(&self) -> Option<&Record> {
        self.view().get(self.selected).copied()
    }

    fn clamp(&mut self) {
        self.selected = self.selected.min(self.view().len().saturating_sub(1));
    }

    /// Applies a page from the daemon; returns a follow-up request if one is due.
    pub fn accept(
        &mut self,
        generation: u64,
        mv: PageMove,
        after: Option<PageStart>,
        page: Page,
    ) -> Option<Outgoing> {
        let keep = self.selected().map(|r| r.id);
        let (landing, follow) = self.window.accept(generation, mv, after, page);
        match landing {
            Some(Landing::Top) => self.selected = 0,
            Some(Landing::Bottom) => self.selected = self.view().len().saturating_sub(1),
            Some(Landing::Keep) => {
                if let Some(i) = keep.and_then(|id| self.view().iter().position(|r| r.id == id)) {
                    self.selected = i;
                }
                self.clamp();
            }
            None => {}
        }
        follow
    }

    fn cycle_filter(&mut self) -> Outgoing {
        let now = self.window.filter();
        let i = self.filters.iter().position(|f| *f == now).unwrap_or(0);
        let next = self.filters[(i + 1) % self.filters.len()];
        self.selected = 0;
        self.window.reset(next)
    }

    /// Keys every list shares: movement, paging, search, filter, sort, open.
    pub fn handle_key(&mut self, key: KeyEvent) -> Action {
        if self.searching {
            return self.search_key(key);
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let len = self.view().len();
        match key.code {
            KeyCode::Down | KeyCode::Char('j') if !ctrl => {
                if self.selected + 1 < len {
                    self.selected += 1;
                    Action::Handled
                } else {
                    send_or_handled(self.window.forward())
                }
            }
            KeyCode::Up | KeyCode::Char('k') if !ctrl => {
                if self.selected > 0 {
                    self.selected -= 1;
                    Action::Handled
                } else {
                    send_or_handled(self.window.back())
                }
            }
            KeyCode::PageDown | KeyCode::Char('f') if ctrl || key.code == KeyCode::PageDown => {
                send_or_handled(self.window.forward())
            }
            KeyCode::PageUp | KeyCode::Char('b') if ctrl || key.code == KeyCode::PageUp => {
                send_or_handled(self.window.back())
            }
            KeyCode::Home | KeyCode::Char('g') => {
                self.selected = 0;
                if self.window.page_number() > 1 {
                    Action::Send(self.window.reset(self.window.filter()))
                } else {
                    Action::Handled
                }
            }
            KeyCode::End | KeyCode::Char('G') => {
                self.selected = len.saturating_sub(1);
                Action::Handled
            }
            KeyCode::Enter => match self.selected() {
                Some(r) => Action::Open(r.id),
                None => Action::Handled,
            },
            KeyCode::Char('/') => {
                self.searching = true;
                Action::Handled
            }
            KeyCode::Char('f') => Action::Send(self.cycle_filter()),
            KeyCode::Char('s') => {
                self.selected = 0;
                Action::Send(self.window.sort_by(next_sort(self.window.sort())))
            }
            _ => Action::Unhandled,
        }
    }

    /// Typing narrows the loaded page; Enter asks the daemon to search every record, Esc
    /// clears the search (and reloads without it if one was sent).
    fn search_key(&mut self, key: KeyEvent) -> Action {
        match key.code {
            KeyCode::Enter => {
                self.searching = false;
                self.selected = 0;
                let query = Some(self.search.trim().to_owned()).filter(|q| !q.is_empty());
                if query.as_deref() == self.window.query() {
                    return Action::Handled;
                }
                return Action::Send(self.window.search(query));
            }
            KeyCode::Esc => {
                self.searching = false;
                self.search.clear();
                self.selected = 0;
                if self.window.query().is_some() {
                    return Action::Send(self.window.search(None));
                }
                return Action::Handled;
            }
            KeyCode::Backspace => {
                self.search.pop();
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                self.search.push(c)
            }
            _ => return Action::Unhandled,
        }
        self.selected = 0;
        Action::Handled
    }

    /// The one-line description of what is shown: filter, search, sort, page.
    pub fn indicators(&self) -> String {
        let state = self.window.filter().map_or("all", |s| s.as_str());
        let mut s = format!("state: {state}");
        if let Some(k) = self.error_filter {
            s.push_str(&format!(" · error: {k}"));
        }
        if let Some(q) = self.window.query() {
            s.push_str(&format!(" · search \"{q}\""));
        }
        s.push_str(&format!(" · sort: {}", sort_label(self.window.sort())));
        match self.window.sorting() {
            Some(p) if self.window.rows().is_empty() => {
                s.push_str(&format!(" (sorting {} of {}…)", p.done, p.total))
            }
            Some(_) => s.push_str(" (re-sorting…)"),
            None => {}
        }
        s.push_str(&format!(" · page {}", self.window.page_number()));
        if self.window.loading() {
            match self.window.continued() {
                // Asking again while the daemon sorts is not news: the progress says it.
                0 if self.window.sorting().is_some() => {}
                0 => s.push_str(" · loading"),
                n => s.push_str(&format!(" · searching… chunk {}", n + 1)),
            }
        } else if let Some(n) = self.window.stalled() {
            s.push_str(&format!(
                " · no match in the next {n} search chunks: PgDn searches further"
            ));
        } else if self.window.more_further() {
            s.push_str(" · more may match further: PgDn searches on");
        }
        s
    }
}

fn send_or_handled(out: Option<Outgoing>) -> Action {
    out.map_or(Action::Handled, Action::Send)
}

fn matches_search(r: &Record, needle: &str) -> bool {
    let p = &r.payload;
    [Some(p.full_name()), p.email(), p.external_id()]
        .into_iter()
        .flatten()
        .any(|s| s.to_lowercase().contains(needle))
}
