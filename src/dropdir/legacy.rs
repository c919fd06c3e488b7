//! The drop folder an older release used by default, `<data_dir>/drop`, inside the data dir.
//! The default is elsewhere now (`config::default_drop_dir`); an install that never
//! configured `drop_dir` may still have files there: unread drops, and plaintext copies in
//! its `processed/` and `rejected/`. They are not watched nor removed by icsync; the daemon's
//! log and `icsync doctor` say how many there are and where, never their names.

use std::path::{Path, PathBuf};

use crate::config::Settings;

/// Entries looked at, at most: the count says "at least" beyond it.
const MAX_LOOKED_AT: usize = 10_000;

/// The old default drop folder and the number of files in it (recursively, links not
/// followed, counted up to a bound), when the settings use the default drop folder, it is
/// elsewhere, and the old one holds any file.
pub fn old_default_files(settings: &Settings) -> Option<(PathBuf, usize)> {
    let old = settings.data_dir.join("drop");
    if !settings.drop_dir_is_default || settings.drop_dir == old {
        return None;
    }
    let n = count_files(&old);
    (n > 0).then_some((old, n))
}

/// What the daemon logs and doctor shows about it.
pub fn describe(old: &Path, files: usize, now: &Path) -> String {
    format!(
        "{files}{more} file(s) remain in {old}, the drop folder of an older release, inside the \
         data dir: they are no longer watched. Move files still to be imported to {now}, and \
         delete the rest (its processed/ and rejected/ hold customer data in plaintext)",
        more = if files >= MAX_LOOKED_AT { "+" } else { "" },
        old = old.display(),
        now = now.display(),
    )
}

fn count_files(root: &Path) -> usize {
    let mut stack = vec![root.to_path_buf()];
    let (mut files, mut seen) = (0, 0);
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > MAX_LOOKED_AT {
                return files;
            }
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(t) if t.is_file() => files += 1,
                _ => {}
            }
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_left_in_the_old_default_are_counted_only_when_the_default_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let file = crate::config::FileConfig::default();
        let overrides = crate::config::Overrides {
            data_dir: Some(data.clone()),
            ..Default::default()
        };
        let defaults = crate::config::Defaults {
            config_file: dir.path().join("c.toml"),
            data_dir: data.clone(),
            key_file: dir.path().join("k"),
            drop_dir: dir.path().join("icsync-drop"),
        };
        let settings = crate::config::resolve(file, overrides, &defaults, None).unwrap();
        assert_eq!(old_default_files(&settings), None);
        std::fs::create_dir_all(data.join("drop/processed")).unwrap();
        std::fs::create_dir_all(data.join("drop/.icsync-work")).unwrap();
        assert_eq!(old_default_files(&settings), None, "empty folders count");
        std::fs::write(data.join("drop/processed/a.csv"), "x").unwrap();
        std::fs::write(data.join("drop/b.csv"), "x").unwrap();
        assert_eq!(old_default_files(&settings), Some((data.join("drop"), 2)));
        let configured = Settings {
            drop_dir_is_default: false,
            ..settings
        };
        assert_eq!(old_default_files(&configured), None);
    }
}
