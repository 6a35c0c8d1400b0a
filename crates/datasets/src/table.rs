//! Columns of a Hugging Face parquet file, read with polars and checked against what a dataset
//! expects.

use crate::error::{DataError, Result};
use polars::prelude::*;
use std::fs::File;
use std::path::{Path, PathBuf};

/// A parquet file read into memory, with its path for messages.
pub(crate) struct Table {
    path: PathBuf,
    frame: DataFrame,
}

impl Table {
    /// Reads the `columns` of `path`; a missing column is an error that lists those present.
    pub fn read(path: &Path, columns: &[&str]) -> Result<Table> {
        let file =
            File::open(path).map_err(|e| DataError::file(path, format!("cannot open: {e}")))?;
        let mut reader = ParquetReader::new(file);
        let schema = reader
            .schema()
            .map_err(|e| DataError::file(path, format!("not a readable parquet file: {e}")))?;
        for column in columns {
            if schema.get(column).is_none() {
                let found: Vec<&str> = schema.iter_names().map(|n| n.as_str()).collect();
                return Err(DataError::file(
                    path,
                    format!("missing column `{column}` (found: {})", found.join(", ")),
                ));
            }
        }
        let frame = reader
            .with_columns(Some(columns.iter().map(|c| c.to_string()).collect()))
            .finish()
            .map_err(|e| DataError::file(path, format!("cannot read: {e}")))?;
        Ok(Table {
            path: path.to_path_buf(),
            frame,
        })
    }

    fn column(&self, name: &str) -> &Column {
        self.frame.column(name).expect("checked when read")
    }

    fn wrong_type(&self, name: &str, expected: &str) -> DataError {
        DataError::file(
            &self.path,
            format!(
                "column `{name}`: expected {expected}, found {}",
                self.column(name).dtype()
            ),
        )
    }

    /// An integer column of class labels in `0..classes`.
    pub fn labels(&self, name: &str, classes: usize) -> Result<Vec<u8>> {
        let column = self.column(name);
        if !column.dtype().is_integer() {
            return Err(self.wrong_type(name, "an integer (int64)"));
        }
        let values = column
            .cast(&DataType::Int64)
            .map_err(|_| self.wrong_type(name, "an integer (int64)"))?;
        let values = values.i64().map_err(|_| self.wrong_type(name, "int64"))?;
        values
            .iter()
            .enumerate()
            .map(|(row, label)| match label {
                Some(l) if (0..classes as i64).contains(&l) => Ok(l as u8),
                Some(l) => Err(DataError::row(
                    &self.path,
                    row,
                    format!(
                        "column `{name}`: label {l} is out of range 0..{}",
                        classes - 1
                    ),
                )),
                None => Err(DataError::row(
                    &self.path,
                    row,
                    format!("column `{name}` is null"),
                )),
            })
            .collect()
    }

    /// A string column.
    pub fn strings(&self, name: &str) -> Result<Vec<&str>> {
        let values = self
            .column(name)
            .str()
            .map_err(|_| self.wrong_type(name, "string"))?;
        self.non_null(name, values.iter())
    }

    /// The binary field `field` of the struct column `name` (Hugging Face's image encoding:
    /// `struct{bytes, path}`).
    pub fn struct_binary(&self, name: &str, field: &str) -> Result<BinaryChunked> {
        let expected = format!("struct{{{field}: binary, …}}");
        let fields = self
            .column(name)
            .struct_()
            .map_err(|_| self.wrong_type(name, &expected))?;
        let values = fields
            .field_by_name(field)
            .map_err(|_| self.wrong_type(name, &expected))?;
        Ok(values
            .binary()
            .map_err(|_| self.wrong_type(name, &expected))?
            .clone())
    }

    /// The values of `column`, or an error naming the first null row.
    pub fn non_null<T>(
        &self,
        column: &str,
        values: impl Iterator<Item = Option<T>>,
    ) -> Result<Vec<T>> {
        values
            .enumerate()
            .map(|(row, v)| {
                v.ok_or_else(|| {
                    DataError::row(&self.path, row, format!("column `{column}` is null"))
                })
            })
            .collect()
    }

    /// The file read.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
