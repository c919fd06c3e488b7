//! Where the engine's own CPU goes: the thread CPU time its store work takes (writing outcomes,
//! on the writer's thread; walking the queue, on the loop's), added up while it runs. Read by
//! the benchmark to break a run's CPU per record down by part, on every run and machine,
//! instead of only in a profile taken by hand.
//!
//! Owns the counters and the clock read; measures whole store calls (a wave's read, a write
//! of many outcomes), never a record at a time. Off until switched on ([`WorkMeter::start`]):
//! the thread's CPU clock is a system call, not free at thousands of calls a second, and only
//! the benchmark reads the counters; off, a call costs one atomic load.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// CPU time spent so far, by part. Cheap to share: counters only.
#[derive(Debug, Default)]
pub struct WorkMeter {
    on: AtomicBool,
    outcome_writes: AtomicU64,
    queue_reads: AtomicU64,
}

/// A reading of a [`WorkMeter`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Work {
    /// Writing outcomes: preparing each record's new value and the transaction that stores it.
    pub outcome_writes: Duration,
    /// Reading due records from the queue (`Store::due_from`) to send them.
    pub queue_reads: Duration,
}

/// Which part a measured call belongs to.
#[derive(Debug, Clone, Copy)]
pub enum Part {
    OutcomeWrites,
    QueueReads,
}

impl WorkMeter {
    /// Measures from now on.
    pub fn start(&self) {
        self.on.store(true, Ordering::Relaxed);
    }

    /// Runs `f`, adding the CPU time this thread spent in it to `part` (when switched on).
    pub fn measure<T>(&self, part: Part, f: impl FnOnce() -> T) -> T {
        if !self.on.load(Ordering::Relaxed) {
            return f();
        }
        let start = thread_cpu();
        let out = f();
        let spent = thread_cpu().saturating_sub(start);
        let nanos = u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX);
        let counter = match part {
            Part::OutcomeWrites => &self.outcome_writes,
            Part::QueueReads => &self.queue_reads,
        };
        counter.fetch_add(nanos, Ordering::Relaxed);
        out
    }

    pub fn read(&self) -> Work {
        let get = |c: &AtomicU64| Duration::from_nanos(c.load(Ordering::Relaxed));
        Work {
            outcome_writes: get(&self.outcome_writes),
            queue_reads: get(&self.queue_reads),
        }
    }
}

/// This thread's CPU time (user and system) so far; zero where the clock cannot be read.
pub fn thread_cpu() -> Duration {
    // SAFETY: clock_gettime writes only into the timespec it is given, which is ours.
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spins until this thread has used `d` of CPU.
    fn burn(d: Duration) {
        let start = thread_cpu();
        while thread_cpu().saturating_sub(start) < d {
            std::hint::black_box(0u64.wrapping_add(1));
        }
    }

    fn started() -> WorkMeter {
        let meter = WorkMeter::default();
        meter.start();
        meter
    }

    #[test]
    fn nothing_is_counted_until_started() {
        let meter = WorkMeter::default();
        meter.measure(Part::OutcomeWrites, || burn(Duration::from_millis(10)));
        assert_eq!(meter.read(), Work::default());
        meter.start();
        meter.measure(Part::OutcomeWrites, || burn(Duration::from_millis(10)));
        assert!(meter.read().outcome_writes >= Duration::from_millis(10));
    }

    #[test]
    fn a_call_counts_the_cpu_it_used_to_its_part_only() {
        let meter = started();
        let answer = meter.measure(Part::OutcomeWrites, || {
            burn(Duration::from_millis(20));
            42
        });
        assert_eq!(answer, 42);
        let work = meter.read();
        assert!(work.outcome_writes >= Duration::from_millis(20), "{work:?}");
        assert_eq!(work.queue_reads, Duration::ZERO);
    }

    #[test]
    fn time_asleep_is_not_cpu() {
        let meter = started();
        meter.measure(Part::QueueReads, || {
            std::thread::sleep(Duration::from_millis(50));
        });
        let spent = meter.read().queue_reads;
        assert!(spent < Duration::from_millis(25), "{spent:?}");
    }

    #[test]
    fn calls_add_up_across_threads() {
        let meter = std::sync::Arc::new(started());
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let meter = meter.clone();
                std::thread::spawn(move || {
                    meter.measure(Part::OutcomeWrites, || burn(Duration::from_millis(10)))
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(meter.read().outcome_writes >= Duration::from_millis(20));
    }
}
