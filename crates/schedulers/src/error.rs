//! Errors in scheduler configurations.

use crate::observation::Interval;

/// A configuration value that cannot make a schedule, with the field it came from.
///
/// `field` is a dotted path inside the `[scheduler]` table, such as `gamma` or
/// `inner.milestones`, so that a message can point at the exact key; it is empty when the fault
/// is the schedule's as a whole (a rate that leaves the finite numbers in a dry run).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The offending key, as a dotted path; empty for the whole schedule.
    pub field: String,
    /// What was expected and what was found.
    pub message: String,
}

impl ConfigError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error, seen from the table that holds `parent`.
    pub fn within(mut self, parent: &str) -> Self {
        self.field = match self.field.is_empty() {
            true => parent.to_owned(),
            false => format!("{parent}.{}", self.field),
        };
        self
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.field.is_empty() {
            true => write!(f, "the schedule: {}", self.message),
            false => write!(f, "`{}`: {}", self.field, self.message),
        }
    }
}

/// `Ok` when `ok`, otherwise an error about `field` whose message `message` builds.
pub(crate) fn ensure(
    ok: bool,
    field: &str,
    message: impl FnOnce() -> String,
) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(field, message()))
    }
}

/// Checks that a float field is finite and strictly positive.
pub(crate) fn positive(field: &str, value: f64) -> Result<(), ConfigError> {
    ensure(value.is_finite() && value > 0.0, field, || {
        format!("must be a finite number > 0, got {value}")
    })
}

/// Checks that a float field is finite and at least zero.
pub(crate) fn non_negative(field: &str, value: f64) -> Result<(), ConfigError> {
    ensure(value.is_finite() && value >= 0.0, field, || {
        format!("must be a finite number ≥ 0, got {value}")
    })
}

/// Checks that a float field lies in `(low, high]` (`low_open`) or `[low, high]`.
pub(crate) fn in_range(
    field: &str,
    value: f64,
    low: f64,
    high: f64,
    low_open: bool,
) -> Result<(), ConfigError> {
    let above = if low_open { value > low } else { value >= low };
    ensure(above && value <= high, field, || {
        let open = if low_open { "(" } else { "[" };
        format!("must lie in {open}{low}, {high}], got {value}")
    })
}

/// Checks that an integer field is at least 1.
pub(crate) fn at_least_one(field: &str, value: u64) -> Result<(), ConfigError> {
    ensure(value >= 1, field, || format!("must be ≥ 1, got {value}"))
}

/// Checks that `min_lr ≤ max_lr` (both already known to be valid numbers).
pub(crate) fn lr_bounds(min_lr: f64, max_lr: f64) -> Result<(), ConfigError> {
    ensure(min_lr <= max_lr, "min_lr", || {
        format!("must not exceed max_lr ({max_lr}), got {min_lr}")
    })
}

/// The clock of a schedule that can run on one clock only: `only`, which `requested` must not
/// contradict; `why` says why no other clock is possible.
pub(crate) fn only_clock(
    requested: Option<Interval>,
    only: Interval,
    why: &str,
) -> Result<Interval, ConfigError> {
    let interval = requested.unwrap_or(only);
    ensure(interval == only, "interval", || {
        format!("this schedule cannot run per {interval}: {why}")
    })?;
    Ok(interval)
}
