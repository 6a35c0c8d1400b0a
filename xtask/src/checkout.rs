//! Files of an lrlab checkout that commands read when they run (experiment files, scripts):
//! found from where the command runs — the current folder or one above it — and otherwise
//! beside the program itself, never at a path fixed when the program was built, so that a
//! binary moved to another checkout or machine reads that checkout's files.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// The folders searched, nearest first: the current folder and its ancestors, then the
/// program's folder and its ancestors.
fn candidates() -> Vec<PathBuf> {
    let mut starts = Vec::new();
    if let Ok(current) = std::env::current_dir() {
        starts.push(current);
    }
    if let Some(folder) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_owned))
    {
        starts.push(folder);
    }
    starts
        .iter()
        .flat_map(|start| start.ancestors().map(Path::to_owned))
        .collect()
}

/// The checkout that holds `relative` (a path such as `configs/cifar10.toml`), if any.
pub fn root_holding(relative: &Path) -> Option<PathBuf> {
    candidates()
        .into_iter()
        .find(|folder| folder.join(relative).exists())
}

/// The file `relative` of the nearest checkout holding it; `flag` names the option that gives
/// the file instead, where there is one.
pub fn file(relative: &Path, flag: Option<&str>) -> Result<PathBuf> {
    match root_holding(relative) {
        Some(root) => Ok(root.join(relative)),
        None => bail!(
            "no {} in the current folder, the folders above it, or beside this program: run \
             from an lrlab checkout{}",
            relative.display(),
            flag.map_or(String::new(), |flag| format!(", or pass {flag}"))
        ),
    }
}

/// The commit of the checkout holding `relative`, where git knows it.
pub fn commit(relative: &Path) -> Option<String> {
    let root = root_holding(relative)?;
    let output = std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
