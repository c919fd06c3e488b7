//! The refused rows of a dropped file, for the TUI: found by the report path that the
//! file's history entry names (so a request can make the daemon read no other file), read
//! from that report in the drop folder with the bounds of `ingest::drop::report`.

use std::path::{Component, Path};

use super::{Service, ServiceError};
use crate::control::DropReport;
use crate::ingest::drop::report::read_refused;
use crate::store::DROP_HISTORY_MAX;

impl Service {
    /// The first refused rows of the recent drop-folder file whose report is `report`
    /// (relative to the drop folder, as its history entry gives it).
    pub fn drop_report(&self, report: &str) -> Result<DropReport, ServiceError> {
        let no_such = || ServiceError::NoSuchReport(report.to_string());
        let folder = self.drop_dir.as_deref().ok_or_else(no_such)?;
        let entry = self
            .drop_files(DROP_HISTORY_MAX)?
            .into_iter()
            .find(|e| e.report.as_deref() == Some(report))
            .filter(|_| inside(report))
            .ok_or_else(no_such)?;
        let path = folder.join(report);
        let (rows, missing) = match std::fs::File::open(&path) {
            Ok(file) => (
                read_refused(file).map_err(|error| ServiceError::Report {
                    path: path.display().to_string(),
                    error,
                })?,
                false,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Vec::new(), true),
            Err(error) => {
                return Err(ServiceError::Report {
                    path: path.display().to_string(),
                    error,
                })
            }
        };
        Ok(DropReport {
            more: entry.rejected.saturating_sub(rows.len() as u64),
            file: entry.file,
            report: path.display().to_string(),
            rejected_copy: entry
                .rejected_copy
                .filter(|c| inside(c))
                .map(|c| folder.join(c).display().to_string()),
            rows,
            missing,
        })
    }
}

/// A relative path that stays inside the drop folder (history entries are written by the
/// daemon, but a store is data: nothing it holds may point the daemon elsewhere).
fn inside(relative: &str) -> bool {
    let path = Path::new(relative);
    path.components().all(|c| matches!(c, Component::Normal(_)))
}
