//! The published CPU-scale study, `docs/results/cifar10-cpu/`: its report regenerates byte for
//! byte from its committed runs, and every accuracy the READMEs quote is one the report states.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::xtask;

/// The published study's folder.
fn published() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/results/cifar10-cpu")
}

#[test]
fn the_published_report_regenerates_from_the_committed_runs() {
    let out = tempfile::tempdir().unwrap();
    let runs = published().join("runs");
    let analysed = xtask(&[
        "analyze",
        "--runs",
        runs.to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert!(
        analysed.status.success(),
        "{}",
        String::from_utf8_lossy(&analysed.stderr)
    );
    let committed = published().join("report/cifar10");
    let mut compared = 0;
    for entry in fs::read_dir(&committed).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        let regenerated = out.path().join("cifar10").join(name);
        assert!(
            fs::read(&path).unwrap() == fs::read(&regenerated).unwrap(),
            "{} differs from the report regenerated from {}",
            path.display(),
            runs.display()
        );
        compared += 1;
    }
    let written = fs::read_dir(out.path().join("cifar10")).unwrap().count();
    assert_eq!(
        compared, written,
        "the committed report lacks files analyze writes"
    );
}

#[test]
fn every_accuracy_the_readmes_quote_is_in_the_report() {
    let report = fs::read_to_string(published().join("report/cifar10/report.md")).unwrap();
    let top =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    let top = &top[..top.find("\n## ").unwrap()];
    let results = fs::read_to_string(published().join("README.md")).unwrap();
    let quoted = [
        ("README.md", top),
        ("docs/results/cifar10-cpu/README.md", &results),
    ];
    for (file, text) in quoted {
        let numbers = four_place_numbers(text);
        assert!(
            !numbers.is_empty(),
            "{file} quotes no accuracy of the study"
        );
        for number in numbers {
            assert!(
                report.contains(number),
                "{file} quotes {number}, which the report does not state"
            );
        }
    }
}

/// Every `0.dddd` in `text` (a number the report writes with four places), not part of a
/// longer number.
fn four_place_numbers(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let digit = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_digit);
    (0..bytes.len().saturating_sub(5))
        .filter(|&i| {
            bytes[i] == b'0'
                && bytes[i + 1] == b'.'
                && (i + 2..i + 6).all(digit)
                && !digit(i + 6)
                && (i == 0 || !(digit(i - 1) || bytes[i - 1] == b'.'))
        })
        .map(|i| &text[i..i + 6])
        .collect()
}
