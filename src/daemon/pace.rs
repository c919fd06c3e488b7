//! How often the daemon turns the engine's status changes into status reports for its
//! subscribers (`forward_events`). Pure timing: no I/O, no clock of its own.
//!
//! While records sync, the engine's status changes on nearly every turn of its loop (the
//! count of requests out), thousands of times a second; each report reads the store's
//! counters on a blocking thread. A person reads a few a second at most, so the first
//! change is reported at once and later ones at most once per [`STATUS_EVERY`], the last
//! of a burst always reported when its interval ends: a subscriber never keeps a stale
//! status.

use std::time::{Duration, Instant};

/// The least time between two status reports.
pub const STATUS_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub struct Pace {
    every: Duration,
    /// The earliest time of the next report.
    next_at: Option<Instant>,
    /// A change came in since the last report, too soon to report it then.
    owed: bool,
}

impl Pace {
    pub fn new(every: Duration) -> Pace {
        Pace {
            every,
            next_at: None,
            owed: false,
        }
    }

    /// A change at `now`: true when it is to be reported now; otherwise it is owed, and
    /// reported at [`Pace::owed_at`].
    pub fn changed(&mut self, now: Instant) -> bool {
        if self.next_at.is_some_and(|at| now < at) {
            self.owed = true;
            return false;
        }
        self.reported(now);
        true
    }

    /// When the owed report is due, if a change is owed.
    pub fn owed_at(&self) -> Option<Instant> {
        self.next_at.filter(|_| self.owed)
    }

    /// A report was made at `now`: nothing is owed, and the next waits its interval.
    pub fn reported(&mut self, now: Instant) {
        self.owed = false;
        self.next_at = now.checked_add(self.every);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY: Duration = Duration::from_millis(100);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_first_change_is_reported_at_once() {
        let t0 = Instant::now();
        let mut pace = Pace::new(EVERY);
        assert!(pace.changed(t0));
        assert_eq!(pace.owed_at(), None);
    }

    #[test]
    fn a_burst_gives_one_report_at_once_and_one_when_its_interval_ends() {
        let t0 = Instant::now();
        let mut pace = Pace::new(EVERY);
        assert!(pace.changed(t0));
        for n in 1..50 {
            assert!(!pace.changed(t0 + ms(n)), "change at {n} ms");
        }
        // The last of the burst is not lost: it is owed at the end of the interval.
        assert_eq!(pace.owed_at(), Some(t0 + EVERY));
        pace.reported(t0 + EVERY);
        assert_eq!(pace.owed_at(), None);
        // A change soon after that report waits for the next interval in turn.
        assert!(!pace.changed(t0 + EVERY + ms(1)));
        assert_eq!(pace.owed_at(), Some(t0 + EVERY * 2));
    }

    #[test]
    fn a_change_after_a_quiet_interval_is_reported_at_once() {
        let t0 = Instant::now();
        let mut pace = Pace::new(EVERY);
        assert!(pace.changed(t0));
        assert!(pace.changed(t0 + EVERY));
        assert!(pace.changed(t0 + EVERY * 5));
        assert_eq!(pace.owed_at(), None);
    }
}
