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

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

use super::error::StoreError;

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
