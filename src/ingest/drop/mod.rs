//! The pure side of the drop folder: which names wait for a rename, how an archived name is
//! numbered when the first choice is taken, and how a file's rejected records are written
//! out (a report of every problem, and a copy of the records to fix and drop again). Works
//! over names, readers and writers only: the folder itself, the store and the timing belong
//! to `crate::dropdir`. A report is also read back here (`report`), for the TUI.

pub mod names;
mod rejects;
pub mod report;

pub use rejects::{rejected_copy_extension, write_rejects, RejectsError};
