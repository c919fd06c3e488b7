//! The bounds the control server keeps: how many connections it serves, how long an idle
//! one may stay, how accept errors back off, and a line reader that never holds more than
//! the frame limit of one request line. The decisions are plain state machines, unit-tested
//! here; the server only drives them.

use std::io;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// Environment variable overriding [`Limits::max_connections`].
pub const ENV_MAX_CONNECTIONS: &str = "ICSYNC_CONTROL_MAX_CONNECTIONS";
/// Environment variable overriding [`Limits::idle_timeout`], in milliseconds.
pub const ENV_IDLE_MS: &str = "ICSYNC_CONTROL_IDLE_MS";

/// Connections served at once by default; one over it is refused with `busy`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;
/// How long a connection without an event subscription may go without sending a complete
/// request, by default.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The first wait after an accept error; each further error doubles it up to
/// [`ACCEPT_BACKOFF_MAX`].
pub const ACCEPT_BACKOFF_FIRST: Duration = Duration::from_millis(5);
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

impl Limits {
    /// The defaults, with [`ENV_MAX_CONNECTIONS`] and [`ENV_IDLE_MS`] applied when they hold
    /// a positive whole number (anything else is ignored).
    pub fn from_env() -> Limits {
        Limits::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Limits {
        let positive = |name| {
            lookup(name)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|n| *n > 0)
        };
        let mut limits = Limits::default();
        if let Some(n) = positive(ENV_MAX_CONNECTIONS) {
            limits.max_connections = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(ms) = positive(ENV_IDLE_MS) {
            limits.idle_timeout = Duration::from_millis(ms);
        }
        limits
    }
}

/// Errors this close to the last one belong to the same episode (descriptors freed and
/// taken again in turn make short gaps): at most one warning and one recovery line are
/// logged per episode.
pub const EPISODE_GAP: Duration = Duration::from_secs(10);

/// Back-off for a failing `accept` (out of descriptors: the pending connection stays
/// queued, so retrying at once would spin). An episode runs from an error to the first
/// success after which no error comes for [`EPISODE_GAP`]; only its first error and its
/// first recovery are logged.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    episode: Option<EpisodeState>,
    wait: Duration,
}

#[derive(Debug)]
struct EpisodeState {
    since: Instant,
    last_error: Instant,
    failures: u64,
    recovery_told: bool,
}

/// What to do after an accept error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffStep {
    pub wait: Duration,
    /// The first error of an episode: log it (later ones are not).
    pub first_of_episode: bool,
}

/// The errors of an episode up to its first recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Episode {
    pub failures: u64,
    pub lasted: Duration,
}

impl AcceptBackoff {
    pub fn on_error(&mut self, now: Instant) -> BackoffStep {
        let ongoing = self
            .episode
            .as_mut()
            .filter(|e| now.saturating_duration_since(e.last_error) < EPISODE_GAP);
        let first_of_episode = match ongoing {
            Some(e) => {
                e.failures += 1;
                e.last_error = now;
                false
            }
            None => {
                self.episode = Some(EpisodeState {
                    since: now,
                    last_error: now,
                    failures: 1,
                    recovery_told: false,
                });
                true
            }
        };
        self.wait = if self.wait.is_zero() {
            ACCEPT_BACKOFF_FIRST
        } else {
            (self.wait * 2).min(ACCEPT_BACKOFF_MAX)
        };
        BackoffStep {
            wait: self.wait,
            first_of_episode,
        }
    }

    /// A connection was accepted: the next error backs off from the start again. Returns the
    /// episode to report the first time it recovers.
    pub fn on_success(&mut self, now: Instant) -> Option<Episode> {
        self.wait = Duration::ZERO;
        let e = self.episode.as_mut()?;
        if e.recovery_told {
            return None;
        }
        e.recovery_told = true;
        Some(Episode {
            failures: e.failures,
            lasted: now.saturating_duration_since(e.since),
        })
    }
}

/// What the line reader has next.
#[derive(Debug, PartialEq, Eq)]
pub enum LineEvent {
    /// A complete line, without its newline, of at most the limit.
    Line(Vec<u8>),
    /// A line went over the limit after `seen` bytes. What was read of it is dropped and
    /// the rest is skipped up to its newline; reading then goes on with the next line.
    TooLong { seen: usize },
    /// The peer closed (a partial last line is dropped).
    Eof,
}

/// The pure part of [`LineReader`]: what a chunk of input does to the current line.
#[derive(Debug)]
pub struct LineState {
    max: usize,
    line: Vec<u8>,
    /// Skipping the rest of an over-long line.
    skipping: bool,
}

impl LineState {
    pub fn new(max: usize) -> LineState {
        LineState {
            max,
            line: Vec::new(),
            skipping: false,
        }
    }

    /// Takes in (part of) `chunk`: how many bytes were used, and the event they completed.
    pub fn feed(&mut self, chunk: &[u8]) -> (usize, Option<LineEvent>) {
        let newline = chunk.iter().position(|b| *b == b'\n');
        if self.skipping {
            return match newline {
                Some(i) => {
                    self.skipping = false;
                    (i + 1, None)
                }
                None => (chunk.len(), None),
            };
        }
        let (take, used) = match newline {
            Some(i) => (i, i + 1),
            None => (chunk.len(), chunk.len()),
        };
        let seen = self.line.len() + take;
        if seen > self.max {
            // Freed at once, not merely cleared: the buffer may be at the limit.
            self.line = Vec::new();
            self.skipping = newline.is_none();
            return (used, Some(LineEvent::TooLong { seen }));
        }
        self.line.extend_from_slice(&chunk[..take]);
        match newline {
            Some(_) => (used, Some(LineEvent::Line(std::mem::take(&mut self.line)))),
            None => (used, None),
        }
    }
}

/// Reads newline-terminated lines of at most `max` bytes, holding no more than that (plus
/// the read buffer) whatever the peer sends. Cancel-safe: what was read stays in the state,
/// so it can sit in a `select!` beside a timer.
pub struct LineReader<R> {
    inner: BufReader<R>,
    state: LineState,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub fn new(read: R, max: usize) -> LineReader<R> {
        LineReader {
            inner: BufReader::new(read),
            state: LineState::new(max),
        }
    }

    pub async fn next(&mut self) -> io::Result<LineEvent> {
        loop {
            let chunk = self.inner.fill_buf().await?;
            if chunk.is_empty() {
                return Ok(LineEvent::Eof);
            }
            let (used, event) = self.state.feed(chunk);
            self.inner.consume(used);
            if let Some(event) = event {
                return Ok(event);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(state: &mut LineState, mut input: &[u8]) -> Vec<LineEvent> {
        let mut events = Vec::new();
        while !input.is_empty() {
            let (used, event) = state.feed(input);
            assert!(used > 0);
            input = &input[used..];
            events.extend(event);
        }
        events
    }

    #[test]
    fn lines_within_the_limit_come_whole_across_chunks() {
        let mut s = LineState::new(8);
        assert_eq!(feed_all(&mut s, b"abc"), vec![]);
        assert_eq!(
            feed_all(&mut s, b"de\n12345678\n"),
            vec![
                LineEvent::Line(b"abcde".to_vec()),
                LineEvent::Line(b"12345678".to_vec())
            ]
        );
    }

    #[test]
    fn an_over_long_line_is_refused_once_then_skipped_to_its_newline() {
        let mut s = LineState::new(8);
        // Refused as soon as it is over, without holding it.
        assert_eq!(
            feed_all(&mut s, b"123456789"),
            vec![LineEvent::TooLong { seen: 9 }]
        );
        assert!(s.line.capacity() == 0 && s.skipping);
        assert_eq!(feed_all(&mut s, &[b'x'; 1000]), vec![]);
        assert_eq!(
            feed_all(&mut s, b"tail\nok\n"),
            vec![LineEvent::Line(b"ok".to_vec())]
        );
        // Over the limit within one chunk, newline included.
        assert_eq!(
            feed_all(&mut s, b"123456789\nnext\n"),
            vec![
                LineEvent::TooLong { seen: 9 },
                LineEvent::Line(b"next".to_vec())
            ]
        );
    }

    #[tokio::test]
    async fn the_reader_reports_eof_and_bounded_lines() {
        let input: &[u8] = b"{\"a\":1}\n0123456789012\nend";
        let mut r = LineReader::new(input, 10);
        assert_eq!(
            r.next().await.unwrap(),
            LineEvent::Line(b"{\"a\":1}".to_vec())
        );
        assert!(matches!(r.next().await.unwrap(), LineEvent::TooLong { .. }));
        assert_eq!(r.next().await.unwrap(), LineEvent::Eof);
    }

    #[test]
    fn accept_errors_back_off_exponentially_and_log_once_per_episode() {
        let mut b = AcceptBackoff::default();
        let t0 = Instant::now();
        let first = b.on_error(t0);
        assert_eq!(first.wait, ACCEPT_BACKOFF_FIRST);
        assert!(first.first_of_episode);
        let mut last = first.wait;
        for i in 0..20 {
            let step = b.on_error(t0 + Duration::from_millis(i));
            assert!(!step.first_of_episode);
            assert!(step.wait >= last && step.wait <= ACCEPT_BACKOFF_MAX);
            last = step.wait;
        }
        assert_eq!(last, ACCEPT_BACKOFF_MAX);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(b.on_success(t1).map(|e| e.failures), Some(21));
        // Descriptors freed and taken again: the same episode, told once, waits reset.
        for _ in 0..100 {
            let step = b.on_error(t1);
            assert!(!step.first_of_episode);
            assert_eq!(step.wait, ACCEPT_BACKOFF_FIRST);
            assert_eq!(b.on_success(t1), None);
        }
        // After a quiet gap, a new episode is told again.
        assert!(b.on_error(t1 + EPISODE_GAP).first_of_episode);
    }

    #[test]
    fn limits_come_from_the_environment_when_sensible() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(Limits::from_lookup(env(&[])), Limits::default());
        let l = Limits::from_lookup(env(&[(ENV_MAX_CONNECTIONS, "3"), (ENV_IDLE_MS, "250")]));
        assert_eq!(l.max_connections, 3);
        assert_eq!(l.idle_timeout, Duration::from_millis(250));
        let bad = Limits::from_lookup(env(&[(ENV_MAX_CONNECTIONS, "0"), (ENV_IDLE_MS, "x")]));
        assert_eq!(bad, Limits::default());
    }
}
