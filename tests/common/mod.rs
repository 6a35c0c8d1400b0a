//! Shared by the end-to-end tests: `cargo xtask` on the shared Hub cache, offline.

#![allow(dead_code)] // each test file uses its own part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// `../shared/hf-cache`, an `HF_HOME` holding real samples of the datasets and a checkpoint.
pub fn shared_home() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/hf-cache")
}

/// Runs `cargo xtask <args>` with `HF_HOME` at the shared cache and `HF_HUB_OFFLINE=1`.
pub fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env("HF_HOME", shared_home())
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("HF_HUB_CACHE")
        .output()
        .unwrap()
}

/// The JSON a successful `cargo xtask <args>` prints.
pub fn json(args: &[&str]) -> Value {
    let output = xtask(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The error a failing `cargo xtask <args>` prints.
pub fn failure(args: &[&str]) -> String {
    let output = xtask(args);
    assert!(!output.status.success(), "`{}` succeeded", args.join(" "));
    String::from_utf8_lossy(&output.stderr).into_owned()
}
