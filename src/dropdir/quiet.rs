//! The quiet period, as pure bookkeeping: a file is ready once its size and modification time
//! have stayed the same for the whole period since they last changed. The watcher feeds it
//! what it sees (from events and scans) and asks when to look next; nothing here reads the
//! disk or the clock.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// What a file looked like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub len: u64,
    pub modified: Option<SystemTime>,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    stamp: Stamp,
    /// When `stamp` was first seen (or, after a failure, when to try again).
    since: Instant,
}

#[derive(Debug)]
pub struct Settle {
    quiet: Duration,
    files: HashMap<PathBuf, Seen>,
}

impl Settle {
    pub fn new(quiet: Duration) -> Self {
        Settle {
            quiet,
            files: HashMap::new(),
        }
    }

    /// Notes how `path` looks now (`None`: gone). A changed stamp restarts its period.
    pub fn saw(&mut self, path: &Path, stamp: Option<Stamp>, now: Instant) {
        match stamp {
            None => {
                self.files.remove(path);
            }
            Some(stamp) => {
                let seen = self
                    .files
                    .entry(path.to_path_buf())
                    .or_insert(Seen { stamp, since: now });
                if seen.stamp != stamp {
                    *seen = Seen { stamp, since: now };
                }
            }
        }
    }

    /// Notes `path` as complete now (renamed into the folder): due at once, unless a later
    /// sighting finds it changed, which restarts its period as usual.
    pub fn saw_complete(&mut self, path: &Path, stamp: Option<Stamp>, now: Instant) {
        match stamp {
            None => {
                self.files.remove(path);
            }
            Some(stamp) => {
                let since = now.checked_sub(self.quiet).unwrap_or(now);
                self.files.insert(path.to_path_buf(), Seen { stamp, since });
            }
        }
    }

    /// Files whose period is over by `now` (to be looked at again with [`Settle::ready`]).
    pub fn due(&self, now: Instant) -> Vec<PathBuf> {
        let mut due: Vec<(Instant, PathBuf)> = self
            .files
            .iter()
            .filter(|(_, s)| s.since + self.quiet <= now)
            .map(|(p, s)| (s.since, p.clone()))
            .collect();
        // Oldest first: files are taken in the order they settled.
        due.sort();
        due.into_iter().map(|(_, p)| p).collect()
    }

    /// Whether `path`, looking like `stamp` at `now`, has been unchanged for the period; a
    /// change restarts the period instead.
    pub fn ready(&mut self, path: &Path, stamp: Option<Stamp>, now: Instant) -> bool {
        self.saw(path, stamp, now);
        self.files
            .get(path)
            .is_some_and(|s| s.since + self.quiet <= now)
    }

    /// When the next period ends, if any file is waiting.
    pub fn next_wake(&self) -> Option<Instant> {
        self.files.values().map(|s| s.since + self.quiet).min()
    }

    pub fn forget(&mut self, path: &Path) {
        self.files.remove(path);
    }

    /// Leaves `path` alone until `until` (after a failure), then looks again.
    pub fn defer(&mut self, path: &Path, until: Instant) {
        if let Some(s) = self.files.get_mut(path) {
            s.since = until.checked_sub(self.quiet).unwrap_or(until);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(len: u64) -> Option<Stamp> {
        Some(Stamp {
            len,
            modified: None,
        })
    }

    #[test]
    fn a_file_is_ready_only_after_staying_unchanged_for_the_period() {
        let quiet = Duration::from_millis(200);
        let t0 = Instant::now();
        let p = Path::new("/d/a.csv");
        let mut s = Settle::new(quiet);
        s.saw(p, stamp(10), t0);
        assert_eq!(s.next_wake(), Some(t0 + quiet));
        assert!(s.due(t0 + quiet / 2).is_empty());
        // It grew just before the period ended: the period starts again.
        assert!(!s.ready(p, stamp(20), t0 + quiet));
        assert_eq!(s.next_wake(), Some(t0 + quiet * 2));
        assert!(s.ready(p, stamp(20), t0 + quiet * 2));
        s.forget(p);
        assert!(s.is_empty());
    }

    #[test]
    fn a_renamed_in_file_is_due_at_once_until_it_changes() {
        let quiet = Duration::from_millis(1000);
        let t0 = Instant::now() + quiet;
        let p = Path::new("/d/a.csv");
        let mut s = Settle::new(quiet);
        s.saw_complete(p, stamp(10), t0);
        assert_eq!(s.due(t0), vec![p.to_path_buf()]);
        assert!(s.ready(p, stamp(10), t0));
        // Written to after the rename: it waits for the period like any other file.
        s.saw_complete(p, stamp(10), t0);
        assert!(!s.ready(p, stamp(11), t0));
        assert!(s.due(t0 + quiet / 2).is_empty());
        assert!(s.ready(p, stamp(11), t0 + quiet));
    }

    #[test]
    fn gone_files_are_dropped_and_failures_wait() {
        let quiet = Duration::from_millis(100);
        let t0 = Instant::now();
        let mut s = Settle::new(quiet);
        s.saw(Path::new("/d/a"), stamp(1), t0);
        s.saw(Path::new("/d/b"), stamp(1), t0 + quiet);
        s.saw(Path::new("/d/a"), None, t0);
        assert_eq!(s.due(t0 + quiet * 3), vec![PathBuf::from("/d/b")]);
        s.defer(Path::new("/d/b"), t0 + quiet * 10);
        assert!(s.due(t0 + quiet * 9).is_empty());
        assert_eq!(s.next_wake(), Some(t0 + quiet * 10));
    }
}
