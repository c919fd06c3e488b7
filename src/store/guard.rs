//! Keeps sled's panics at the store boundary. sled 0.34 panics on some damaged files (an
//! index out of bounds in its segment code when the database file is truncated) instead of
//! returning `Error::Corruption`; every public store operation runs inside [`guarded`], so
//! such a panic becomes [`StoreError::Damaged`] and the caller (the CLI, the daemon) reports
//! it like any other damage instead of dying.
//!
//! A caught panic still runs the process's panic hook, which would print sled's message and a
//! backtrace hint to the user's terminal. [`guarded`] marks its thread while it runs, and a
//! hook installed once (chaining to the previous one) stays silent for panics on a marked
//! thread: the panic's message is kept and carried in the error instead.
//!
//! Panics on sled's own background threads (its flusher) cannot be caught here; they stop that
//! thread and the next operation's error reports the damage.
//!
//! It also keeps sled away from a damaged log ([`check_log`]): sled 0.34 takes the first
//! message whose CRC fails in the part of the log it replays for a torn write and overwrites
//! everything after it (the rest of that segment, and whole later segments) before it may
//! refuse the database anyway, erasing the only copies `recover` could read. So before sled
//! opens a store, the replayed part is read without sled (`raw`), and a damaged message with an
//! intact one after it is reported as damage instead. Two kinds of damage are a crash's, which
//! sled cuts as it should: a damaged message with nothing intact after it (a torn last
//! write), and one in sled's unstable tail (its newest buffers, written on a thread pool and
//! so not in order: a kill can tear one while a later one is already out; see
//! `raw::unstable_tail`).

use std::cell::{Cell, RefCell};
use std::io::{Read, Seek, SeekFrom};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Once;

use super::error::StoreError;
use super::raw;

thread_local! {
    /// How deep this thread is in `guarded` calls.
    static GUARDED: Cell<u32> = const { Cell::new(0) };
    /// The message of the last panic caught on this thread.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Longest panic message carried in an error (sled's are one line).
const MESSAGE_MAX: usize = 200;

fn install_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if GUARDED.with(Cell::get) > 0 {
                let text = panic_text(info.payload());
                let at = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{text}{at}")));
            } else {
                previous(info);
            }
        }));
    });
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    text.chars().take(MESSAGE_MAX).collect()
}

/// Runs `f`; a panic inside it becomes `StoreError::Damaged` naming `what` was being done.
/// `f` must leave nothing half-changed that the caller relies on after an error: store
/// operations are sled transactions or reads, so a panic in one commits nothing of ours.
pub fn guarded<T>(
    what: &'static str,
    f: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    install_hook();
    GUARDED.with(|g| g.set(g.get() + 1));
    let out = catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(g.get().saturating_sub(1)));
    match out {
        Ok(result) => result,
        Err(payload) => {
            let message = LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| panic_text(payload.as_ref()));
            Err(StoreError::Damaged {
                detail: format!("the database engine failed while {what} ({message})"),
            })
        }
    }
}

/// Refuses a sled directory whose replayed log is damaged (see the module docs), before sled
/// opens it. Reads only the segments sled replays (those at or after the newest snapshot's
/// lsn; every segment's 20-byte header is read to tell), one segment in memory at a time.
/// Skipped, leaving the verdict to sled, where the check cannot be made safely: no database
/// file yet, a compressed log, or the file locked by another handle (a running daemon
/// writing it; sled then reports the store in use).
pub fn check_log(db_dir: &Path) -> Result<(), StoreError> {
    let path = db_dir.join("db");
    let Ok(mut file) = std::fs::File::open(&path) else {
        return Ok(());
    };
    let conf = std::fs::read_to_string(db_dir.join("conf")).unwrap_or_default();
    if raw::compressed(&conf) || !lock_free(&file) {
        return Ok(());
    }
    let segment_size = raw::segment_size(&conf).unwrap_or(raw::DEFAULT_SEGMENT_SIZE);
    let ss = segment_size as u64;
    let replay_from = replay_from(db_dir) / ss * ss;
    let len = file.metadata().map_err(|e| io_error(&path, e))?.len();
    prefetch_headers(&file, len, ss);
    let mut segments = Vec::new();
    let mut buf = Vec::with_capacity(segment_size);
    let mut at = 0u64;
    while at < len {
        file.seek(SeekFrom::Start(at))
            .map_err(|e| io_error(&path, e))?;
        let mut head = [0u8; raw::SEGMENT_HEADER_LEN];
        let got = read_up_to(&mut file, &mut head).map_err(|e| io_error(&path, e))?;
        let older = raw::segment_header_lsn(&head[..got]).is_some_and(|lsn| lsn < replay_from);
        if !older {
            file.seek(SeekFrom::Start(at))
                .map_err(|e| io_error(&path, e))?;
            buf.clear();
            (&mut file)
                .take(ss)
                .read_to_end(&mut buf)
                .map_err(|e| io_error(&path, e))?;
            if let (Some(base), damage) = raw::segment_damage(&buf, segment_size) {
                if base >= replay_from {
                    segments.push(damage);
                }
            }
        }
        at = at.saturating_add(ss);
    }
    match raw::damage_before_valid(&segments, segment_size, replay_from) {
        None => Ok(()),
        Some(lsn) => Err(StoreError::Damaged {
            detail: format!(
                "the log in {} has a damaged message at lsn {lsn} with intact ones after it \
                 (not opened: the database engine would erase them)",
                db_dir.display()
            ),
        }),
    }
}

/// Asks the kernel to start reading every segment's header page at once, so the loop in
/// [`check_log`] (one small read per segment, in order) finds them in the page cache instead
/// of waiting for each in turn: on a store whose pages are not cached (after a reboot) that
/// wait was most of the first `status` at 1M records. Only a hint: nothing fails without it.
fn prefetch_headers(file: &std::fs::File, len: u64, segment_size: u64) {
    use std::os::fd::AsRawFd;
    const PAGE: i64 = 4096;
    let mut at = 0u64;
    while at < len {
        let Ok(offset) = i64::try_from(at) else {
            return;
        };
        // SAFETY: posix_fadvise only reads its arguments; the descriptor is open for the
        // whole call (borrowed from `file`).
        unsafe {
            libc::posix_fadvise(file.as_raw_fd(), offset, PAGE, libc::POSIX_FADV_WILLNEED);
        }
        at = at.saturating_add(segment_size);
    }
}

/// The lsn sled replays its log from: the newest snapshot's (0 without one).
fn replay_from(db_dir: &Path) -> u64 {
    std::fs::read_dir(db_dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| raw::snapshot_lsn(&e.file_name().to_string_lossy()))
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// Whether no other handle holds sled's lock on the database file (sled takes an exclusive
/// `flock`); ours is released when `file` closes, before sled opens it.
fn lock_free(file: &std::fs::File) -> bool {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a descriptor this function's caller owns for the call's duration.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

fn read_up_to(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

fn io_error(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Open {
        path: path.to_owned(),
        source: sled::Error::Io(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_inside_becomes_a_damaged_error_naming_the_operation() {
        let e = guarded::<()>("reading the counts", || panic!("index out of bounds")).unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("store damaged: "), "{text}");
        assert!(text.contains("reading the counts"), "{text}");
        assert!(text.contains("index out of bounds"), "{text}");
        assert!(text.contains("icsync recover"), "{text}");
    }

    #[test]
    fn results_pass_through_and_nesting_keeps_the_mark() {
        assert_eq!(guarded("x", || Ok(3)).unwrap(), 3);
        let inner = guarded("outer", || {
            let e = guarded::<()>("inner", || panic!("boom")).unwrap_err();
            assert!(GUARDED.with(Cell::get) > 0);
            Err::<(), _>(e)
        })
        .unwrap_err();
        assert!(inner.to_string().contains("inner"));
        assert_eq!(GUARDED.with(Cell::get), 0);
    }
}
