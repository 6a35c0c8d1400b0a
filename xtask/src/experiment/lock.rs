//! One process per run: an OS lock on the run's `.lock` file, held for as long as the process
//! trains the run. The operating system releases it when the process ends, however it ends, so
//! a killed process never leaves a lock that blocks the run, and a process id reused by another
//! program is never mistaken for the holder. The file names its holder for the messages.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// A held lock; dropping it deletes the file and releases the run.
pub struct RunLock {
    path: PathBuf,
    /// The locked file: closing it releases the lock.
    _file: File,
}

const LOCK: &str = ".lock";

/// How many times a lock whose file was deleted under it (by a holder that was just finishing)
/// is taken again before giving up.
const ATTEMPTS: usize = 8;

impl RunLock {
    /// Takes the lock of the run in `folder`, or fails naming the process that holds it.
    pub fn take(folder: &Path) -> Result<Self> {
        std::fs::create_dir_all(folder).with_context(|| {
            format!(
                "cannot create the run folder {}; `--out` must be a folder you can write",
                folder.display()
            )
        })?;
        let path = folder.join(LOCK);
        for _ in 0..ATTEMPTS {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .with_context(|| {
                    format!(
                        "cannot open the lock {}; `--out` must be a folder you can write",
                        path.display()
                    )
                })?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => bail!(
                    "{} is being trained by {} (lock {}); wait for it, or run another shard",
                    folder.display(),
                    holder(&mut file),
                    path.display()
                ),
                Err(TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("cannot lock {}", path.display()));
                }
            }
            // A holder that finished deletes the file before it lets go: the lock just taken
            // may be that of a deleted file, which guards nothing. Take the new one.
            if !names_file(&path, &file)? {
                continue;
            }
            let left = holder(&mut file);
            if !left.is_empty() {
                eprintln!(
                    "warning: taking over the stale lock {} ({left} ended without releasing the \
                     run)",
                    path.display()
                );
            }
            file.set_len(0)?;
            file.rewind()?;
            writeln!(file, "process {} on {}", std::process::id(), hostname())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write the lock {}", path.display()))?;
            return Ok(Self { path, _file: file });
        }
        bail!("{}: cannot take the lock", path.display())
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Deleted while still held, so that no other process can lock the deleted file and
        // believe it holds the run (see `names_file`).
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Who the lock file says holds it (`process 123 on host`), or nothing.
fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.rewind().and_then(|()| file.read_to_string(&mut text));
    text.trim().to_owned()
}

/// Whether `path` still names the file `file` is open on.
fn names_file(path: &Path, file: &File) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let Ok(named) = std::fs::metadata(path) else {
        return Ok(false);
    };
    let open = file.metadata()?;
    Ok((named.dev(), named.ino()) == (open.dev(), open.ino()))
}

/// This machine's name, to tell a lock of another machine sharing the file system.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn one_holder_at_a_time_and_a_dead_holder_blocks_nothing() {
        let folder = tempfile::tempdir().unwrap();
        let held = RunLock::take(folder.path()).unwrap();
        let err = RunLock::take(folder.path()).err().unwrap().to_string();
        assert!(
            err.contains(&format!(
                "is being trained by process {}",
                std::process::id()
            )),
            "{err}"
        );
        drop(held);
        assert!(!folder.path().join(LOCK).exists(), "released and deleted");
        // The file a killed process left behind, naming a process that is alive (pid 1): no
        // one holds the lock, so it is taken.
        std::fs::write(folder.path().join(LOCK), "process 1 on elsewhere\n").unwrap();
        let taken = RunLock::take(folder.path()).unwrap();
        let text = std::fs::read_to_string(folder.path().join(LOCK)).unwrap();
        assert_eq!(
            text.trim(),
            format!("process {} on {}", std::process::id(), hostname())
        );
        drop(taken);
    }

    #[test]
    fn racing_takers_never_hold_the_run_together() {
        let folder = tempfile::tempdir().unwrap();
        let holders = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let taken = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..200 {
                        if let Ok(lock) = RunLock::take(folder.path()) {
                            let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            taken.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_micros(50));
                            holders.fetch_sub(1, Ordering::SeqCst);
                            drop(lock);
                        }
                    }
                });
            }
        });
        assert_eq!(most.load(Ordering::SeqCst), 1, "two holders at once");
        assert!(taken.load(Ordering::SeqCst) > 0);
    }
}
