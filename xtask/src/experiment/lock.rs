//! One process per run: a lock file created exclusively, naming its owner; a lock whose process
//! is gone is taken over with a warning.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// A held lock; dropping it releases the run.
pub struct RunLock {
    path: PathBuf,
}

const LOCK: &str = ".lock";

impl RunLock {
    /// Takes the lock of the run in `folder`, or fails naming the process that holds it.
    pub fn take(folder: &Path) -> Result<Self> {
        std::fs::create_dir_all(folder)?;
        let path = folder.join(LOCK);
        for _ in 0..2 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    writeln!(file, "{} {}", std::process::id(), hostname())?;
                    file.sync_all()?;
                    return Ok(Self { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(&path).unwrap_or_default();
                    let mut fields = owner.split_whitespace();
                    let pid = fields.next().and_then(|p| p.parse::<u32>().ok());
                    let host = fields.next().unwrap_or_default();
                    match pid {
                        Some(pid) if host != hostname() => bail!(
                            "{} is being trained by process {pid} on {host} (lock {}); if that \
                             job is gone, delete the lock",
                            folder.display(),
                            path.display()
                        ),
                        Some(pid) if process_alive(pid) => bail!(
                            "{} is being trained by process {pid} (lock {}); wait for it, or run \
                             another shard",
                            folder.display(),
                            path.display()
                        ),
                        _ => {
                            eprintln!(
                                "warning: taking over the stale lock {} (process {} is gone)",
                                path.display(),
                                owner.trim()
                            );
                            std::fs::remove_file(&path)?;
                        }
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        bail!("{}: cannot take the lock", path.display())
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// This machine's name, to tell a lock of another machine sharing the file system.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}

/// Whether process `pid` exists on this machine (Linux: `/proc/<pid>`).
fn process_alive(pid: u32) -> bool {
    pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists()
}
