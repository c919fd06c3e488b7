//! Sorted views: how the daemon serves a `list` by name or by newest change over every record,
//! one page at a time, although names and change times are sealed at rest and no index orders
//! them (an index by name would keep customer names sortable on disk, which encryption at
//! rest exists to prevent; see docs/architecture.md).
//!
//! A view is built in memory only: a background thread walks the selection (state filter and
//! search), decrypting, and keeps one sort key and the id per record, sorted. Pages are then
//! served from it by a keyset cursor (key, id), reading each record fresh from the store, so
//! a page shows current data and a cursor stays valid across rebuilds. The control loop never
//! waits for a build: until one is done, replies carry its progress and no records.
//!
//! When the store changed, the old order keeps being served (records fresh) and a rebuild
//! starts after a short debounce, and never sooner after the last build than four times its
//! duration, so a daemon busy syncing a million records spends at most a fifth of a core on
//! re-sorting. At most [`SortConfig::views`] views are kept (least recently used goes first),
//! each dropped after [`SortConfig::idle_drop`] unasked, and all of them when the store is
//! locked; the name arena is zeroed on drop. Names never leave memory: not written, not
//! logged (errors name the store's failure, never a record).
//!
//! This module owns the views and their threads; it reads the store only through its public
//! read methods and never writes.

use std::cmp::Reverse;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use zeroize::Zeroizing;

use super::{matches_query, ServiceError};
use crate::control::{ListSort, SortCursor, SortKey, SortProgress};
use crate::store::{Record, RecordId, RecordState, Store, StoreError};

/// Records a build reads from the store at a time.
const BUILD_CHUNK: usize = 1_000;

/// How the sorter trades freshness, memory and CPU.
#[derive(Debug, Clone, Copy)]
pub struct SortConfig {
    /// Quiet time after a change is first seen before the view is rebuilt.
    pub debounce: Duration,
    /// A view nobody asked for in this long is dropped (its memory returned).
    pub idle_drop: Duration,
    /// Views kept at once.
    pub views: usize,
    /// Entries one page request reads at most (records that left the selection since the
    /// build are skipped; past this the reply is short and `next` says where to go on).
    pub scan_max: usize,
}

impl Default for SortConfig {
    fn default() -> Self {
        SortConfig {
            debounce: Duration::from_secs(1),
            idle_drop: Duration::from_secs(5 * 60),
            views: 2,
            scan_max: super::SEARCH_SCAN_MAX,
        }
    }
}

/// What a view holds: one order over one selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewSpec {
    pub sort: ListSort,
    pub state: Option<RecordState>,
    /// The search, trimmed and in lower case (none: every record).
    pub needle: Option<String>,
}

impl ViewSpec {
    fn selects(&self, r: &Record) -> bool {
        self.state.is_none_or(|s| r.state == s)
            && self.needle.as_deref().is_none_or(|n| matches_query(r, n))
    }
}

/// One page served from a view.
#[derive(Debug, Clone, PartialEq)]
pub struct SortedPage {
    pub records: Vec<Record>,
    pub next: Option<SortCursor>,
    pub sorting: Option<SortProgress>,
}

#[derive(Debug, thiserror::Error)]
enum BuildError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the names to sort exceed 4 GiB")]
    TooLarge,
    #[error("cancelled")]
    Cancelled,
}

/// A name's place in the arena, and its record.
#[derive(Debug, Clone, Copy)]
struct NameEntry {
    start: u32,
    len: u32,
    id: RecordId,
}

enum Keys {
    /// Lower-case names back to back in one zeroed-on-drop string: a million names cost
    /// their bytes plus 24 bytes each, not an allocation each.
    Name {
        arena: Zeroizing<String>,
        entries: Vec<NameEntry>,
    },
    NewestChange(Vec<(Reverse<DateTime<Utc>>, RecordId)>),
}

impl Keys {
    fn len(&self) -> usize {
        match self {
            Keys::Name { entries, .. } => entries.len(),
            Keys::NewestChange(v) => v.len(),
        }
    }

    fn id(&self, i: usize) -> RecordId {
        match self {
            Keys::Name { entries, .. } => entries[i].id,
            Keys::NewestChange(v) => v[i].1,
        }
    }

    fn cursor(&self, i: usize) -> SortCursor {
        match self {
            Keys::Name { arena, entries } => SortCursor {
                id: entries[i].id,
                key: SortKey::Name(name_of(arena, &entries[i]).to_owned()),
            },
            Keys::NewestChange(v) => SortCursor {
                id: v[i].1,
                key: SortKey::NewestChange(v[i].0 .0),
            },
        }
    }

    /// The index of the first entry after `c` (none when `c` is of another order).
    fn position_after(&self, c: &SortCursor) -> Option<usize> {
        match (self, &c.key) {
            (Keys::Name { arena, entries }, SortKey::Name(name)) => Some(
                entries.partition_point(|e| (name_of(arena, e), e.id) <= (name.as_str(), c.id)),
            ),
            (Keys::NewestChange(v), SortKey::NewestChange(at)) => {
                Some(v.partition_point(|e| *e <= (Reverse(*at), c.id)))
            }
            _ => None,
        }
    }
}

fn name_of<'a>(arena: &'a str, e: &NameEntry) -> &'a str {
    let start = e.start as usize;
    arena.get(start..start + e.len as usize).unwrap_or_default()
}

struct SortedView {
    keys: Keys,
    /// The store's change count when the build started reading.
    changes: u64,
    finished: Instant,
    took: Duration,
}

/// A build in progress, shared with its thread.
struct Build {
    done: AtomicU64,
    total: u64,
    cancel: AtomicBool,
}

impl Build {
    fn progress(&self) -> SortProgress {
        SortProgress {
            done: self.done.load(Ordering::Relaxed).min(self.total),
            total: self.total,
        }
    }
}

struct Slot {
    spec: ViewSpec,
    ready: Option<Arc<SortedView>>,
    build: Option<Arc<Build>>,
    last_used: Instant,
    /// A build that failed: said once to the next request, which then tries again.
    failed: Option<String>,
}

impl Slot {
    fn cancel(&self) {
        if let Some(b) = &self.build {
            b.cancel.store(true, Ordering::Relaxed);
        }
    }
}

#[derive(Default)]
struct Slots {
    slots: Vec<Slot>,
    janitor: bool,
}

struct Shared {
    state: Mutex<Slots>,
    /// Wakes the janitor when views are dropped or added.
    wake: Condvar,
    config: SortConfig,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Slots> {
        // The slots stay consistent whatever panicked while holding them.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The sorted views of one service. Dropping it drops every view and cancels builds.
pub struct Sorter {
    shared: Arc<Shared>,
}

impl Drop for Sorter {
    fn drop(&mut self) {
        self.clear();
    }
}

impl Sorter {
    pub fn new(config: SortConfig) -> Self {
        Sorter {
            shared: Arc::new(Shared {
                state: Mutex::new(Slots::default()),
                wake: Condvar::new(),
                config,
            }),
        }
    }

    /// Drops every view now (the store was locked: no decrypted name stays in memory).
    pub fn clear(&self) {
        let mut st = self.shared.lock();
        for s in &st.slots {
            s.cancel();
        }
        st.slots.clear();
        self.shared.wake.notify_all();
    }

    /// Views held (built or building).
    pub fn views(&self) -> usize {
        self.shared.lock().slots.len()
    }

    /// Up to `limit` records of `spec`'s selection after `after`, in its order. Never waits
    /// for a build: without a view yet the page is empty and says how far sorting is.
    pub fn page(
        &self,
        store: &Store,
        spec: ViewSpec,
        after: Option<&SortCursor>,
        limit: usize,
    ) -> Result<SortedPage, ServiceError> {
        if store.is_locked() {
            self.clear();
            return Err(StoreError::KeyLocked.into());
        }
        let (view, sorting) = self.view(store, spec.clone())?;
        let Some(view) = view else {
            return Ok(SortedPage {
                records: Vec::new(),
                next: None,
                sorting: Some(sorting.unwrap_or_default()),
            });
        };
        let keys = &view.keys;
        let start = match after {
            None => 0,
            Some(c) => keys.position_after(c).ok_or_else(|| {
                ServiceError::NotAllowed(format!(
                    "after_key is not a key of sort {}",
                    sort_name(spec.sort)
                ))
            })?,
        };
        let mut records = Vec::new();
        let mut i = start;
        let mut last = None;
        let end = keys.len();
        while i < end && records.len() < limit && i - start < self.shared.config.scan_max {
            // Read fresh: a record may have changed, or left the selection, since the build.
            if let Some(r) = store.get(keys.id(i))?.filter(|r| spec.selects(r)) {
                records.push(r);
            }
            last = Some(i);
            i += 1;
        }
        let next = last.filter(|_| i < end).map(|j| keys.cursor(j));
        Ok(SortedPage {
            records,
            next,
            sorting,
        })
    }

    /// The view to serve `spec` from (if one is built) and the progress of a build under way,
    /// starting one when there is no view or the store changed since it was built.
    fn view(
        &self,
        store: &Store,
        spec: ViewSpec,
    ) -> Result<(Option<Arc<SortedView>>, Option<SortProgress>), ServiceError> {
        let config = self.shared.config;
        let mut st = self.shared.lock();
        let now = Instant::now();
        let i = match st.slots.iter().position(|s| s.spec == spec) {
            Some(i) => i,
            None => {
                if st.slots.len() >= config.views.max(1) {
                    let lru = (0..st.slots.len())
                        .min_by_key(|&i| st.slots[i].last_used)
                        .unwrap_or(0);
                    st.slots.swap_remove(lru).cancel();
                }
                st.slots.push(Slot {
                    spec: spec.clone(),
                    ready: None,
                    build: None,
                    last_used: now,
                    failed: None,
                });
                st.slots.len() - 1
            }
        };
        let slot = &mut st.slots[i];
        slot.last_used = now;
        if let Some(message) = slot.failed.take() {
            return Err(ServiceError::Sort(message));
        }
        let stale = slot
            .ready
            .as_ref()
            .is_none_or(|v| v.changes != store.changes());
        if stale && slot.build.is_none() {
            // A first build starts at once; a rebuild waits for the changes to settle, and
            // for four times the last build's duration to have passed since it finished.
            let delay = slot.ready.as_ref().map_or(Duration::ZERO, |v| {
                let rest = (v.finished + v.took * 4).saturating_duration_since(now);
                config.debounce.max(rest)
            });
            let total = selection_size(store, spec.state)?;
            let build = Arc::new(Build {
                done: AtomicU64::new(0),
                total,
                cancel: AtomicBool::new(false),
            });
            slot.build = Some(build.clone());
            let shared = self.shared.clone();
            let store = store.clone();
            let spawned = std::thread::Builder::new()
                .name("icsync-sort".into())
                .spawn(move || run_build(&shared, &store, spec, &build, delay));
            if let Err(e) = spawned {
                slot.build = None;
                return Err(ServiceError::Sort(format!("cannot start sorting: {e}")));
            }
        }
        let out = (
            slot.ready.clone(),
            slot.build.as_ref().map(|b| b.progress()),
        );
        if !st.janitor {
            st.janitor = true;
            let shared = self.shared.clone();
            if std::thread::Builder::new()
                .name("icsync-sort-idle".into())
                .spawn(move || janitor(&shared))
                .is_err()
            {
                // Without a janitor views live until replaced or the store is locked; the
                // next request tries again.
                st.janitor = false;
            }
        }
        Ok(out)
    }
}

fn sort_name(sort: ListSort) -> &'static str {
    match sort {
        ListSort::Queue => "queue",
        ListSort::Name => "name",
        ListSort::State => "state",
        ListSort::NewestChange => "newest_change",
    }
}

/// Records in the selection before any search narrows it: what a build reads.
fn selection_size(store: &Store, state: Option<RecordState>) -> Result<u64, ServiceError> {
    let counts = store.counts()?;
    Ok(state.map_or(counts.total, |s| counts.get(s)))
}

fn run_build(shared: &Shared, store: &Store, spec: ViewSpec, build: &Arc<Build>, delay: Duration) {
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    let changes = store.changes();
    let started = Instant::now();
    let result = build_keys(store, &spec, build);
    let took = started.elapsed();
    let mut st = shared.lock();
    // A slot replaced, dropped or cleared meanwhile no longer wants this build.
    let Some(slot) = st
        .slots
        .iter_mut()
        .find(|s| s.build.as_ref().is_some_and(|b| Arc::ptr_eq(b, build)))
    else {
        return;
    };
    slot.build = None;
    match result {
        Ok(keys) => {
            tracing::debug!(
                records = keys.len(),
                millis = took.as_millis() as u64,
                "sorted view built"
            );
            slot.ready = Some(Arc::new(SortedView {
                keys,
                changes,
                finished: Instant::now(),
                took,
            }));
        }
        Err(BuildError::Cancelled) => {}
        Err(e) => slot.failed = Some(format!("sorting failed: {e}")),
    }
}

/// Reads the selection in queue order, keeping each record's sort key, and sorts.
fn build_keys(store: &Store, spec: &ViewSpec, build: &Build) -> Result<Keys, BuildError> {
    let mut arena = Zeroizing::new(String::new());
    let mut names: Vec<NameEntry> = Vec::new();
    let mut changed = Vec::new();
    let mut after = None;
    loop {
        if build.cancel.load(Ordering::Relaxed) {
            return Err(BuildError::Cancelled);
        }
        let page = store.list(spec.state, after, BUILD_CHUNK)?;
        let read = page.len();
        after = page.last().map(|r| r.id).or(after);
        for r in page.iter().filter(|r| spec.selects(r)) {
            match spec.sort {
                ListSort::NewestChange => changed.push((Reverse(r.updated_at), r.id)),
                _ => {
                    let start = u32::try_from(arena.len()).map_err(|_| BuildError::TooLarge)?;
                    for c in r.payload.full_name().chars().flat_map(char::to_lowercase) {
                        arena.push(c);
                    }
                    let end = u32::try_from(arena.len()).map_err(|_| BuildError::TooLarge)?;
                    names.push(NameEntry {
                        start,
                        len: end - start,
                        id: r.id,
                    });
                }
            }
        }
        build.done.fetch_add(read as u64, Ordering::Relaxed);
        if read < BUILD_CHUNK {
            break;
        }
    }
    Ok(match spec.sort {
        ListSort::NewestChange => {
            changed.sort_unstable();
            Keys::NewestChange(changed)
        }
        _ => {
            names.sort_unstable_by(|a, b| {
                name_of(&arena, a)
                    .cmp(name_of(&arena, b))
                    .then(a.id.cmp(&b.id))
            });
            Keys::Name {
                arena,
                entries: names,
            }
        }
    })
}

/// Drops views left unasked for `idle_drop`; ends when none is left.
fn janitor(shared: &Shared) {
    let idle = shared.config.idle_drop;
    let mut st = shared.lock();
    loop {
        let now = Instant::now();
        st.slots.retain(|s| {
            let keep = now.duration_since(s.last_used) < idle;
            if !keep {
                s.cancel();
            }
            keep
        });
        let Some(next) = st.slots.iter().map(|s| s.last_used + idle).min() else {
            st.janitor = false;
            return;
        };
        let wait = next.saturating_duration_since(now);
        st = shared
            .wake
            .wait_timeout(st, wait)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}
