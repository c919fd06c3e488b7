//! Parts 4 and 5, on one store of 1M sealed records built once with `submit_batch`:
//! - the queue screen drawn in-process (App + ratatui TestBackend) with its page fetched from
//!   the store through the service, per frame;
//! - a daemon on that store, offline (its API is a closed port, so the 1M records wait, as on
//!   a laptop away from the network): its RSS when idle, and `icsync tui` started in tmux,
//!   timed until its first frame and until the first frame with the store's counts.
//!
//! `BENCH_BIG_DIR=/path` keeps the store there and reuses it on the next run;
//! `BENCH_DAEMON_CONFIG='cache_capacity_mb = 8'` adds config lines to the idle daemon.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::Utc;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use icsync::service::Service;
use icsync::store::{Origin, Payload, Store, StoreOptions};
use icsync::tui::app::{App, Effect, Incoming, Outgoing};
use icsync::tui::{ui, Theme};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

use super::report::Row;
use super::util::{
    dir_size, icsync_bin, keys, ms, payloads, poll, proc_kb, quantile, quick, BenchResult, Daemon,
};

const CHUNK: usize = 10_000;
const WIDTH: u16 = 120;
const HEIGHT: u16 = 40;

fn records() -> usize {
    if quick() {
        50_000
    } else {
        1_000_000
    }
}

/// The store directory (`<home>/data/store`, where a daemon with `data_dir = <home>/data`
/// finds it) and the key beside the config (`<home>/data.key`).
struct Big {
    home: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Big {
    fn store_dir(&self) -> PathBuf {
        self.home.join("data").join("store")
    }

    /// A daemon on this store, offline (its API is a closed port), started and not waited
    /// for; `BENCH_DAEMON_CONFIG` adds config lines.
    fn spawn_daemon(&self) -> BenchResult<Daemon> {
        Daemon::spawn(
            &self.home,
            "http://127.0.0.1:9",
            &self.home.join("data"),
            &std::env::var("BENCH_DAEMON_CONFIG").unwrap_or_default(),
        )
    }
}

fn build(rows: &mut Vec<Row>) -> BenchResult<Big> {
    let (home, tmp) = match std::env::var_os("BENCH_BIG_DIR") {
        Some(d) => (PathBuf::from(d), None),
        None => {
            let t = tempfile::tempdir()?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    std::fs::create_dir_all(&home)?;
    let big = Big { home, _tmp: tmp };
    let n = records();
    let store = Store::open_with_key(
        &big.store_dir(),
        StoreOptions::default(),
        &keys(&big.home),
        None,
    )?;
    let have = store.counts()?.total as usize;
    if have < n {
        let start = Instant::now();
        for c in (have..n).step_by(CHUNK) {
            let items: Vec<(Payload, Origin)> = payloads(&format!("big{c}"), CHUNK.min(n - c))?
                .into_iter()
                .map(|p| (p, Origin::Cli))
                .collect();
            store.submit_batch(items, Utc::now())?;
        }
        // As the daemon does once an import's requests stop.
        store.fold_pending()?;
        let secs = start.elapsed().as_secs_f64();
        rows.push(Row::new(
            "4/5",
            format!("build: submit_batch {} sealed records", n - have),
            format!("{:.0} rec/s ({secs:.0} s)", (n - have) as f64 / secs),
        ));
    }
    Ok(big)
}

fn answer(service: &Service, app: &mut App, effects: Vec<Effect>) {
    let mut pending: Vec<Outgoing> = sent(effects);
    while let Some(o) = pending.pop() {
        let reply = service.answer(o.request);
        let fx = app.apply(Incoming::Reply {
            purpose: o.purpose,
            reply,
        });
        pending.extend(sent(fx));
    }
}

fn sent(effects: Vec<Effect>) -> Vec<Outgoing> {
    effects
        .into_iter()
        .filter_map(|e| match e {
            Effect::Send(o) => Some(o),
            _ => None,
        })
        .collect()
}

/// The queue screen: fetch (a page through the service) + draw, per frame.
fn tui_draw(rows: &mut Vec<Row>, store_dir: &Path, home: &Path) -> BenchResult<()> {
    let store = Store::open_with_key(store_dir, StoreOptions::default(), &keys(home), None)?;
    let total = store.counts()?.total;
    let service = Service::new(store, None);
    let mut app = App::new(Utc::now(), HEIGHT);
    app.apply(Incoming::Connected {
        daemon_version: "bench".into(),
    });
    let fx = app.start();
    answer(&service, &mut app, fx);
    let fx = app.handle_key(KeyEvent::new(KeyCode::Char('2'), KeyModifiers::NONE));
    answer(&service, &mut app, fx);
    let mut terminal = Terminal::new(TestBackend::new(WIDTH, HEIGHT))?;
    let (mut draws, mut frames) = (Vec::new(), Vec::new());
    for _ in 0..200 {
        // A refresh as the TUI does on a change event: the visible page again, then a draw.
        let start = Instant::now();
        let fx = app.apply(Incoming::Event(icsync::control::Event::RecordChanged {
            id: icsync::store::RecordId::new(),
            state: icsync::store::RecordState::Queued,
        }));
        answer(&service, &mut app, fx);
        let fx = app.apply(Incoming::Tick(Utc::now()));
        answer(&service, &mut app, fx);
        let drawn = Instant::now();
        terminal.draw(|frame| ui::draw(frame, &app, &Theme::PLAIN))?;
        draws.push(drawn.elapsed());
        frames.push(start.elapsed());
    }
    let screen = terminal.backend().to_string();
    if !screen.contains("Person big") {
        return Err("the queue screen shows no records".into());
    }
    let (p50, p99) = (quantile(&frames, 0.5), quantile(&frames, 0.99));
    rows.push(
        Row::new(
            "4",
            format!("TUI queue screen, {total} records: page fetch + draw, p50 / p99"),
            format!("{:.2} / {:.2} ms", ms(p50), ms(p99)),
        )
        .goal("< 10 ms a frame", ms(p99) < 10.0),
    );
    rows.push(Row::new(
        "4",
        "  of which the draw alone, p50",
        format!("{:.2} ms", ms(quantile(&draws, 0.5))),
    ));
    Ok(())
}

fn tmux(args: &[&str]) -> BenchResult<String> {
    let out = Command::new("tmux")
        .args(["-L", "icsync-bench"])
        .args(args)
        .output()?;
    if !out.status.success() {
        return Err(format!("tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `icsync tui` in a tmux pane: time to the first frame, and to the first frame that shows
/// the store's total (the status reply drawn).
fn tui_start(rows: &mut Vec<Row>, daemon: &Daemon, total: u64) -> BenchResult<()> {
    // The tmux server is started first, outside the clock.
    tmux(&[
        "new-session",
        "-d",
        "-s",
        "idle",
        "-x",
        "120",
        "-y",
        "40",
        "sleep 600",
    ])?;
    let command = format!(
        "ICSYNC_KEY_FILE={} {} --config {} tui",
        daemon.key_file.display(),
        icsync_bin(),
        daemon.config.display()
    );
    let result = (|| {
        let start = Instant::now();
        tmux(&["new-window", "-t", "idle", "-n", "tui", &command])?;
        let capture = || tmux(&["capture-pane", "-p", "-t", "idle:tui"]).unwrap_or_default();
        let first = poll(
            "the TUI's first frame",
            Duration::from_secs(30),
            Duration::from_millis(2),
            || capture().contains("Dashboard").then(|| start.elapsed()),
        )?;
        let total_text = total.to_string();
        let data = poll(
            "the TUI showing the counts",
            Duration::from_secs(30),
            Duration::from_millis(2),
            || {
                capture()
                    .lines()
                    .any(|l| l.contains("total") && l.contains(&total_text))
                    .then(|| start.elapsed())
            },
        )?;
        BenchResult::Ok((first, data))
    })();
    let _ = tmux(&["kill-server"]);
    let (first, data) = result?;
    rows.push(
        Row::new(
            "4",
            "`icsync tui` start to first frame (tmux)",
            format!("{:.0} ms", ms(first)),
        )
        .goal("< 300 ms", ms(first) < 300.0),
    );
    rows.push(Row::new(
        "4",
        format!("`icsync tui` start to the counts of {total} records drawn"),
        format!("{:.0} ms", ms(data)),
    ));
    Ok(())
}

pub fn run(rows: &mut Vec<Row>, extra: &mut Vec<String>) -> BenchResult<()> {
    let big = build(rows)?;
    let total = {
        let store = Store::open_with_key(
            &big.store_dir(),
            StoreOptions::default(),
            &keys(&big.home),
            None,
        )?;
        store.counts()?.total
    };
    tui_draw(rows, &big.store_dir(), &big.home)?;
    let daemon = big.spawn_daemon()?;
    daemon.wait_socket()?;
    // Idle: up, offline, nothing to do but wait for the network. sled's segment cleaner
    // still moves pages out of sparse log segments after a large write (it reads them into
    // its cache), so the resident size could climb for a while: the figure is where it
    // settles, no rise above 1 MB in 30 s, read once a second for at most 120 s
    // (`BENCH_IDLE_FULL=1`: all 120 s, each 10th reading printed, for an A/B).
    let full = std::env::var_os("BENCH_IDLE_FULL").is_some();
    let rss_now = || proc_kb(Some(daemon.pid()), "VmRSS:").unwrap_or(0);
    let started = Instant::now();
    let first = {
        std::thread::sleep(Duration::from_secs(5));
        rss_now()
    };
    let mut samples = vec![first];
    while started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_secs(1));
        samples.push(rss_now());
        if full && samples.len() % 10 == 0 {
            eprintln!(
                "idle RSS at {:.0} s: {} MB",
                started.elapsed().as_secs_f64(),
                samples.last().unwrap_or(&0) / 1024
            );
        }
        let settled = !full && samples.len() > 30 && {
            let window = &samples[samples.len() - 31..];
            window.iter().max().unwrap_or(&0) - window[0] <= 1024
        };
        if settled {
            break;
        }
    }
    let mb = |kb: u64| kb as f64 / 1024.0;
    let rss = mb(*samples.last().unwrap_or(&0));
    let hwm = mb(proc_kb(Some(daemon.pid()), "VmHWM:").unwrap_or(0));
    rows.push(
        Row::new(
            "5",
            format!(
                "daemon RSS idle, {total} records stored, settled after {:.0} s (at 5 s; peak since start)",
                started.elapsed().as_secs_f64()
            ),
            format!("{rss:.0} MB ({:.0} MB; {hwm:.0} MB)", mb(first)),
        )
        .goal("< 100 MB", rss < 100.0),
    );
    tui_start(rows, &daemon, total)?;
    daemon.stop();
    first_status(rows, &big, total, Cache::Warm)?;
    first_status(rows, &big, total, Cache::Cold)?;
    let size = dir_size(&big.store_dir());
    let per_record = size as f64 / total.max(1) as f64;
    rows.push(
        Row::new(
            "5",
            format!("store on disk per record, {total} sealed records (built by submit_batch)"),
            format!(
                "{per_record:.0} B ({:.0} MB)",
                size as f64 / 1024.0 / 1024.0
            ),
        )
        .goal("<= 1 KB", per_record <= 1024.0),
    );
    let _ = extra;
    Ok(())
}

/// Whether the store's files are in the page cache when the daemon restarts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cache {
    /// As after a restart: the daemon just closed them.
    Warm,
    /// As after a reboot: this store's pages are dropped from the page cache first
    /// (`posix_fadvise(DONTNEED)` on its files only).
    Cold,
}

/// Drops the page cache of the files under `dir` (best effort: what cannot be opened stays).
fn evict(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            evict(&path);
        } else if let Ok(file) = std::fs::File::open(&path) {
            use std::os::fd::AsRawFd;
            // SAFETY: the descriptor is open for the call; posix_fadvise only advises the
            // kernel about its cached pages.
            unsafe {
                libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
            }
        }
    }
}

/// A restart on the big store: the daemon is started and `icsync status` is run at once (it
/// waits for the daemon's answer); timed from the daemon's start, until `status` has printed
/// the store's total, with when the socket first accepted.
fn first_status(rows: &mut Vec<Row>, big: &Big, total: u64, cache: Cache) -> BenchResult<()> {
    if cache == Cache::Cold {
        evict(&big.store_dir());
    }
    let start = Instant::now();
    let daemon = big.spawn_daemon()?;
    daemon.wait_socket()?;
    let socket = start.elapsed();
    let out = Command::new(icsync_bin())
        .arg("--config")
        .arg(&daemon.config)
        .arg("status")
        .env("ICSYNC_KEY_FILE", &daemon.key_file)
        .output()?;
    let answered = start.elapsed();
    daemon.stop();
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !text.contains(&total.to_string()) {
        return Err(format!(
            "`icsync status` after the restart: {} {text} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    rows.push(
        Row::new(
            "5",
            format!(
                "restart ({}): daemon start to first `icsync status` answered, {total} records",
                match cache {
                    Cache::Warm => "store in the page cache",
                    Cache::Cold => "store's pages dropped, as after a reboot",
                }
            ),
            format!("{:.0} ms (socket up at {:.0} ms)", ms(answered), ms(socket)),
        )
        .goal("< 1 s", answered < Duration::from_secs(1)),
    );
    Ok(())
}
