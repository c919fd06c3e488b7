//! A drop-folder file as it is taken: opened once, without following a symbolic link, checked
//! to be a regular file, its size and times noted. Every later read goes through that one
//! descriptor (positioned reads, so the parser and the raw copy can walk it side by side) and
//! stops at the size the file had when it was taken, so a symlink swapped in afterwards is
//! never followed and bytes appended afterwards are never half-read. Whether a writer still
//! holds the file open is asked of the kernel with a read lease (Linux).

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Who the file is and how it looked when taken: a different inode, size or modification time
/// later means it changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub dev: u64,
    pub ino: u64,
    pub len: u64,
    pub mtime_ns: i128,
}

impl Identity {
    fn of(meta: &std::fs::Metadata) -> Identity {
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }
}

/// What the read lease said about writers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writers {
    /// No process has the file open for writing.
    None,
    /// Some process still has it open for writing: not taken yet.
    Open,
    /// The kernel would not say (not Linux, not the file's owner, a file system without
    /// leases): the quiet period alone decides.
    Unknown,
}

#[derive(Debug)]
pub struct Taken {
    file: File,
    pub at_take: Identity,
}

impl Taken {
    /// Opens `path` for reading without following a final symbolic link. `Ok(None)` when it
    /// is gone, is a symbolic link, or is not a regular file (never a drop).
    pub fn open(path: &Path) -> io::Result<Option<Taken>> {
        let file = match OpenOptions::new()
            .read(true)
            // O_NONBLOCK: a FIFO swapped in must not block the open; it is refused below.
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Ok(None),
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        if !meta.file_type().is_file() {
            return Ok(None);
        }
        Ok(Some(Taken {
            at_take: Identity::of(&meta),
            file,
        }))
    }

    /// A reader over the file's bytes as taken (up to its size then), from the start.
    pub fn reader(&self) -> At<'_> {
        At {
            file: &self.file,
            pos: 0,
            end: self.at_take.len,
        }
    }

    /// How the file looks now, through the descriptor.
    pub fn now(&self) -> io::Result<Identity> {
        self.file.metadata().map(|m| Identity::of(&m))
    }

    /// Whether `path` still names this very file (not a file or link put there since).
    pub fn is_at(&self, path: &Path) -> bool {
        std::fs::symlink_metadata(path)
            .is_ok_and(|m| m.dev() == self.at_take.dev && m.ino() == self.at_take.ino)
    }

    /// Makes the file private (0600) through the descriptor, before it is archived.
    pub fn make_private(&self) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        if self.file.metadata()?.permissions().mode() & 0o777 != 0o600 {
            self.file
                .set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(())
    }

    /// Whether a process still has the file open for writing. On Linux a read lease cannot
    /// be had while any descriptor for writing is open (`F_SETLEASE` fails with `EAGAIN`);
    /// it is released at once, since only the answer is wanted.
    pub fn writers(&self) -> Writers {
        lease_writers(&self.file)
    }
}

#[cfg(target_os = "linux")]
fn lease_writers(file: &File) -> Writers {
    use std::os::fd::AsRawFd;
    // A lease that is broken (a writer opens the file while we hold it) is announced with
    // SIGIO, whose default action ends the process. The lease is held only for the instant
    // between these two calls, but a writer can open in that instant, so SIGIO is ignored
    // (once, process-wide: nothing in icsync uses it) before the first lease is taken.
    static IGNORE_SIGIO: std::sync::Once = std::sync::Once::new();
    IGNORE_SIGIO.call_once(|| {
        // SAFETY: setting a signal's disposition to SIG_IGN has no memory effects.
        unsafe {
            libc::signal(libc::SIGIO, libc::SIG_IGN);
        }
    });
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor this function borrows for its whole duration.
    let taken = unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK) };
    if taken == 0 {
        // SAFETY: as above; releasing our own lease.
        unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK) };
        return Writers::None;
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(libc::EAGAIN) => Writers::Open,
        // EACCES: not the file's owner; EINVAL: no leases on this file system; others alike.
        _ => Writers::Unknown,
    }
}

#[cfg(not(target_os = "linux"))]
fn lease_writers(_file: &File) -> Writers {
    Writers::Unknown
}

/// Positioned reads through a shared descriptor, from `pos` up to `end`.
#[derive(Debug)]
pub struct At<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn readers_walk_the_file_as_taken_independently_and_stop_at_its_size_then() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.ndjson");
        std::fs::write(&path, b"0123456789").unwrap();
        let taken = Taken::open(&path).unwrap().unwrap();
        let mut a = taken.reader();
        let mut b = taken.reader();
        let mut four = [0u8; 4];
        a.read_exact(&mut four).unwrap();
        assert_eq!(&four, b"0123");
        // Appended after the take: not read, and the file shows as changed.
        let mut w = OpenOptions::new().append(true).open(&path).unwrap();
        w.write_all(b"MORE").unwrap();
        let mut all = String::new();
        b.read_to_string(&mut all).unwrap();
        assert_eq!(all, "0123456789");
        let mut rest = String::new();
        a.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "456789");
        assert_ne!(taken.now().unwrap(), taken.at_take);
    }

    #[test]
    fn a_symlink_or_a_folder_is_never_taken() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("secret");
        std::fs::write(&target, b"x").unwrap();
        let link = dir.path().join("a.csv");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(Taken::open(&link).unwrap().is_none());
        assert!(Taken::open(dir.path()).unwrap().is_none());
        assert!(Taken::open(&dir.path().join("gone")).unwrap().is_none());
        let taken = Taken::open(&target).unwrap().unwrap();
        assert!(taken.is_at(&target));
        assert!(!taken.is_at(&link));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_open_writer_is_seen_and_a_closed_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.csv");
        let writer = File::create(&path).unwrap();
        let taken = Taken::open(&path).unwrap().unwrap();
        // Unknown where the file system has no leases (some CI overlays): nothing to prove.
        let first = taken.writers();
        if first == Writers::Unknown {
            eprintln!("skipped: this file system refuses leases");
            return;
        }
        assert_eq!(first, Writers::Open);
        drop(writer);
        assert_eq!(taken.writers(), Writers::None);
    }
}
