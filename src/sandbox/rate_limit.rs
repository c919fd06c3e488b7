//! The per-organisation rate limit: a fixed one-second window counting requests. Pure: the
//! caller passes the time in milliseconds, so the window logic is unit-tested without a clock.
//! It owns only the counters; it knows nothing of HTTP.

use std::collections::HashMap;

/// Request counters per organisation, one window per whole second.
#[derive(Debug, Default)]
pub struct RateLimiter {
    windows: HashMap<String, Window>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    second: i64,
    count: u64,
}

/// A request refused by the limit: retry after this many whole seconds (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

impl RateLimiter {
    /// Counts one request of `org` at `now_ms` against `limit` requests per second (0: no
    /// limit). Every request is counted, refused ones too, so a client that keeps hammering
    /// stays refused until the window ends.
    pub fn check(&mut self, org: &str, now_ms: i64, limit: u32) -> Result<(), RetryAfter> {
        if limit == 0 {
            return Ok(());
        }
        let second = now_ms.div_euclid(1000);
        let window = self
            .windows
            .entry(org.to_string())
            .or_insert(Window { second, count: 0 });
        if window.second != second {
            *window = Window { second, count: 0 };
        }
        window.count += 1;
        if window.count <= u64::from(limit) {
            Ok(())
        } else {
            // The window ends within a second; Retry-After is whole seconds, so 1.
            Err(RetryAfter(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_limit_then_refuses_until_the_next_second() {
        let mut rl = RateLimiter::default();
        assert_eq!(rl.check("a", 5_000, 2), Ok(()));
        assert_eq!(rl.check("a", 5_400, 2), Ok(()));
        assert_eq!(rl.check("a", 5_999, 2), Err(RetryAfter(1)));
        assert_eq!(rl.check("a", 6_000, 2), Ok(()));
        assert_eq!(rl.check("a", 6_001, 2), Ok(()));
        assert_eq!(rl.check("a", 6_002, 2), Err(RetryAfter(1)));
    }

    #[test]
    fn organisations_have_separate_windows() {
        let mut rl = RateLimiter::default();
        assert_eq!(rl.check("a", 0, 1), Ok(()));
        assert_eq!(rl.check("a", 1, 1), Err(RetryAfter(1)));
        assert_eq!(rl.check("b", 2, 1), Ok(()));
    }

    #[test]
    fn zero_is_off() {
        let mut rl = RateLimiter::default();
        for ms in 0..1000 {
            assert_eq!(rl.check("a", ms, 0), Ok(()));
        }
    }

    #[test]
    fn a_lowered_limit_applies_within_the_current_window() {
        let mut rl = RateLimiter::default();
        for ms in 0..5 {
            assert_eq!(rl.check("a", ms, 10), Ok(()));
        }
        assert_eq!(rl.check("a", 10, 3), Err(RetryAfter(1)));
    }
}
