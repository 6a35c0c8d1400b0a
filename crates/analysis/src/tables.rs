//! The result tables as polars frames, written as CSV and parquet.

use std::fs;
use std::io::Write;
use std::path::Path;

use polars::prelude::*;
use serde::Serialize;
use serde_json::Value;

use crate::error::{AnalysisError, Result};
use crate::metrics::TimeToThreshold;
use crate::study::{Experiment, RunRow};

/// A frame with one column per field of the rows, in field order: text, integer, float or
/// boolean by what the fields hold, nulls where a field is `None`.
pub fn frame<T: Serialize>(rows: &[T]) -> DataFrame {
    let objects: Vec<serde_json::Map<String, Value>> = rows
        .iter()
        .map(
            |row| match serde_json::to_value(row).expect("rows serialise") {
                Value::Object(fields) => fields,
                other => panic!("table rows must serialise as objects, not {other}"),
            },
        )
        .collect();
    let Some(first) = objects.first() else {
        return DataFrame::empty();
    };
    let columns = first
        .keys()
        .map(|key| {
            let cells: Vec<&Value> = objects.iter().map(|o| &o[key]).collect();
            column(key, &cells)
        })
        .collect();
    DataFrame::new_infer_height(columns).expect("columns of equal length")
}

fn column(name: &str, cells: &[&Value]) -> Column {
    let present = || cells.iter().filter(|c| !c.is_null());
    let name = PlSmallStr::from(name);
    if present().all(|c| c.is_boolean()) && present().next().is_some() {
        Column::new(name, cells.iter().map(|c| c.as_bool()).collect::<Vec<_>>())
    } else if present().all(|c| c.is_i64() || c.is_u64()) && present().next().is_some() {
        Column::new(name, cells.iter().map(|c| c.as_i64()).collect::<Vec<_>>())
    } else if present().all(|c| c.is_number()) {
        Column::new(name, cells.iter().map(|c| c.as_f64()).collect::<Vec<_>>())
    } else {
        let text = |c: &Value| match c {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        };
        Column::new(name, cells.iter().map(|c| text(c)).collect::<Vec<_>>())
    }
}

/// One row of `runs.csv`: a run with its metrics spelt out.
#[derive(Serialize)]
struct RunTableRow<'a> {
    experiment: &'a str,
    arm: &'a str,
    seed: u64,
    status: &'static str,
    counted: bool,
    diverged: Option<bool>,
    fit: Option<&'static str>,
    epochs: Option<u32>,
    best_val_acc: Option<f64>,
    best_val_epoch: Option<u32>,
    test_acc_at_best_val: Option<f64>,
    final_train_acc: Option<f64>,
    final_val_acc: Option<f64>,
    final_test_acc: Option<f64>,
    epochs_to_threshold: Option<u32>,
    reached_threshold: Option<bool>,
    final_loss_gap: Option<f64>,
    final_acc_gap: Option<f64>,
    loss_gap_last5: Option<f64>,
    acc_gap_last5: Option<f64>,
    val_acc_auc: Option<f64>,
}

fn run_table_row(run: &RunRow) -> RunTableRow<'_> {
    let m = run.metrics.as_ref();
    let time: Option<&TimeToThreshold> = m.map(|m| &m.epochs_to_threshold);
    RunTableRow {
        experiment: &run.experiment,
        arm: &run.arm,
        seed: run.seed,
        status: run.status.name(),
        counted: run.counted,
        diverged: m.map(|m| m.diverged),
        fit: run.fit().map(|f| f.name()),
        epochs: m.map(|m| m.epochs),
        best_val_acc: m.map(|m| m.best_val_acc),
        best_val_epoch: m.map(|m| m.best_val_epoch),
        test_acc_at_best_val: m.and_then(|m| m.test_acc_at_best_val),
        final_train_acc: m.map(|m| m.final_train_acc),
        final_val_acc: m.map(|m| m.final_val_acc),
        final_test_acc: m.and_then(|m| m.final_test_acc),
        epochs_to_threshold: time.map(|t| t.epochs),
        reached_threshold: time.map(|t| t.reached),
        final_loss_gap: m.map(|m| m.final_loss_gap),
        final_acc_gap: m.map(|m| m.final_acc_gap),
        loss_gap_last5: m.map(|m| m.loss_gap_last5),
        acc_gap_last5: m.map(|m| m.acc_gap_last5),
        val_acc_auc: m.map(|m| m.val_acc_auc),
    }
}

/// Writes `runs`, `summary` and `comparisons` of an experiment as `.csv` and `.parquet`
/// into `folder`; returns the files written.
pub fn write_tables(experiment: &Experiment, folder: &Path) -> Result<Vec<std::path::PathBuf>> {
    let runs: Vec<RunTableRow> = experiment.runs.iter().map(run_table_row).collect();
    let mut written = Vec::new();
    for (name, mut table) in [
        ("runs", frame(&runs)),
        ("summary", frame(&experiment.summary)),
        ("comparisons", frame(&experiment.comparisons)),
    ] {
        let csv = folder.join(format!("{name}.csv"));
        let mut bytes = Vec::new();
        CsvWriter::new(&mut bytes)
            .finish(&mut table)
            .map_err(|e| AnalysisError::file(&csv, e))?;
        write_file(&csv, &bytes)?;
        let parquet = folder.join(format!("{name}.parquet"));
        let mut bytes = Vec::new();
        ParquetWriter::new(&mut bytes)
            .finish(&mut table)
            .map_err(|e| AnalysisError::file(&parquet, e))?;
        write_file(&parquet, &bytes)?;
        written.extend([csv, parquet]);
    }
    Ok(written)
}

/// Writes a file whole or not at all (temporary file, then rename), creating its folder.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let folder = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(folder).map_err(|e| {
        AnalysisError::file(folder, format!("cannot create the report folder: {e}"))
    })?;
    let temporary = path.with_extension(format!("{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        fs::rename(&temporary, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&temporary);
        AnalysisError::file(path, format!("cannot write: {e}"))
    })
}
