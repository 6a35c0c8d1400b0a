//! Lengths of time in a schedule — `t_max`, `step_size`, `milestones`, `warmup_steps`, … —
//! written as a number of ticks or relative to the run, and resolved against it.

use crate::error::{ConfigError, ensure};
use crate::observation::Interval;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// How long a phase of a schedule lasts: a number of ticks of its clock, or a share of the run.
///
/// In a configuration file:
///
/// | written | meaning |
/// | --- | --- |
/// | `15` | 15 ticks of the schedule's clock (epochs or optimizer steps) |
/// | `"epochs"` | the whole run, in epochs (for a schedule that ticks per epoch) |
/// | `"steps"` | the whole run, in optimizer steps (for a schedule that ticks per step) |
/// | `"30%"` | 30 % of the run, in the schedule's own clock, rounded to the nearest tick |
///
/// "The run" is the stretch of training the schedule runs over ([`Span`]): the whole run for a
/// top-level schedule, what follows the warmup for the `inner` schedule of a
/// [`WarmupConfig`](crate::WarmupConfig), and the part between its milestones for a schedule of a
/// [`SequentialConfig`](crate::SequentialConfig). A relative length is turned into ticks by
/// [`SchedulerConfig::resolve`](crate::SchedulerConfig::resolve), before the schedule is built;
/// building a schedule with a length still relative is an error. A share is at least the
/// smallest value the key accepts (1 tick for `t_max`, 0 for `patience`), so that `"30%"` of a
/// two-epoch run is a step size of one epoch, not zero.
///
/// ```
/// use lrlab_schedulers::{SchedulerConfig, Span};
/// let config: SchedulerConfig = toml::from_str(r#"
///     kind = "step"
///     step_size = "30%"
/// "#)?;
/// let resolved = config.resolve(Span::of_run(50, 1407))?;
/// assert_eq!(resolved, toml::from_str(r#"
///     kind = "step"
///     step_size = 15
/// "#)?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Length {
    /// So many ticks of the schedule's clock.
    Ticks(u64),
    /// The whole run, counted on this clock (`"epochs"` or `"steps"`); the schedule must tick
    /// on it.
    Whole(Interval),
    /// This percentage of the run (`"30%"`), counted on the schedule's clock; > 0.
    Percent(f64),
}

impl Length {
    /// The number of ticks; an error naming `field` when the length is still relative to the
    /// run.
    pub fn ticks(self, field: &str) -> Result<u64, ConfigError> {
        match self {
            Length::Ticks(ticks) => Ok(ticks),
            relative => Err(ConfigError::new(
                field,
                format!(
                    "{relative} is relative to the run: resolve the schedule against the run's \
                     length first (`SchedulerConfig::resolve`)"
                ),
            )),
        }
    }

    /// The length in ticks of `clock` over `span`, at least `min`: a number of ticks stays as
    /// it is (the schedule checks its range when built).
    pub(crate) fn resolve(
        self,
        field: &str,
        span: Span,
        clock: Interval,
        min: u64,
    ) -> Result<Length, ConfigError> {
        let share = match self {
            Length::Ticks(_) => return Ok(self),
            Length::Whole(unit) => {
                ensure(unit == clock, field, || {
                    format!(
                        "{self} counts {unit}s, but this schedule ticks once per {clock}: write \
                         \"{clock}s\", or a share of the run such as \"100%\""
                    )
                })?;
                1.0
            }
            Length::Percent(percent) => percent / 100.0,
        };
        let of = span.ticks(clock);
        ensure(of > 0.0, field, || {
            format!("{self} of a stretch of training that never comes (0 {clock}s)")
        })?;
        // Ticks are counted far below 2⁵³: the product and its rounding are exact enough.
        let ticks = (share * of).round() as u64;
        Ok(Length::Ticks(ticks.max(min)))
    }
}

impl fmt::Display for Length {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Length::Ticks(ticks) => write!(f, "{ticks}"),
            Length::Whole(unit) => write!(f, "\"{unit}s\""),
            Length::Percent(percent) => write!(f, "\"{percent}%\""),
        }
    }
}

impl From<u64> for Length {
    fn from(ticks: u64) -> Self {
        Length::Ticks(ticks)
    }
}

impl Serialize for Length {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Length::Ticks(ticks) => serializer.serialize_u64(*ticks),
            Length::Whole(unit) => serializer.serialize_str(&format!("{unit}s")),
            Length::Percent(percent) => serializer.serialize_str(&format!("{percent}%")),
        }
    }
}

impl<'de> Deserialize<'de> for Length {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LengthVisitor)
    }
}

struct LengthVisitor;

const EXPECTED: &str = "a number of ticks (an integer ≥ 0), \"epochs\", \"steps\" or a share of the run such as \"30%\"";

impl serde::de::Visitor<'_> for LengthVisitor {
    type Value = Length;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_u64<E: serde::de::Error>(self, ticks: u64) -> Result<Length, E> {
        Ok(Length::Ticks(ticks))
    }

    fn visit_i64<E: serde::de::Error>(self, ticks: i64) -> Result<Length, E> {
        u64::try_from(ticks)
            .map(Length::Ticks)
            .map_err(|_| E::custom(format!("{ticks}: expected {EXPECTED}")))
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Length, E> {
        let fail = || E::custom(format!("\"{text}\": expected {EXPECTED}"));
        match text.trim() {
            "epochs" => Ok(Length::Whole(Interval::Epoch)),
            "steps" => Ok(Length::Whole(Interval::Step)),
            other => {
                let percent: f64 = other
                    .strip_suffix('%')
                    .ok_or_else(fail)?
                    .trim()
                    .parse()
                    .map_err(|_| fail())?;
                if percent.is_finite() && percent > 0.0 {
                    Ok(Length::Percent(percent))
                } else {
                    Err(fail())
                }
            }
        }
    }
}

/// The stretch of training a schedule runs over, in optimizer steps: what relative lengths
/// ([`Length`]) are shares of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Optimizer steps in the stretch.
    pub steps: u64,
    /// Optimizer steps per epoch of the run (≥ 1).
    pub steps_per_epoch: u64,
}

impl Span {
    /// A whole run of `epochs` epochs of `steps_per_epoch` optimizer steps each.
    pub fn of_run(epochs: u64, steps_per_epoch: u64) -> Span {
        Span {
            steps: epochs.saturating_mul(steps_per_epoch),
            steps_per_epoch: steps_per_epoch.max(1),
        }
    }

    /// Its length in ticks of `clock` (a fraction of an epoch when it does not end on an
    /// epoch's end).
    pub fn ticks(self, clock: Interval) -> f64 {
        match clock {
            Interval::Step => self.steps as f64,
            Interval::Epoch => self.steps as f64 / self.steps_per_epoch as f64,
        }
    }

    /// The first `ticks` ticks of `clock`, or the whole span if it is shorter.
    pub(crate) fn first(self, ticks: u64, clock: Interval) -> Span {
        Span {
            steps: self.steps.min(self.steps_of(ticks, clock)),
            ..self
        }
    }

    /// What is left after the first `ticks` ticks of `clock` (empty if nothing is).
    pub(crate) fn after(self, ticks: u64, clock: Interval) -> Span {
        Span {
            steps: self.steps.saturating_sub(self.steps_of(ticks, clock)),
            ..self
        }
    }

    fn steps_of(self, ticks: u64, clock: Interval) -> u64 {
        match clock {
            Interval::Step => ticks,
            Interval::Epoch => ticks.saturating_mul(self.steps_per_epoch),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Length, String> {
        #[derive(Deserialize)]
        struct Holder {
            length: Length,
        }
        toml::from_str::<Holder>(&format!("length = {text}"))
            .map(|h| h.length)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn every_form_reads_and_writes_back() {
        assert_eq!(parse("15"), Ok(Length::Ticks(15)));
        assert_eq!(parse("\"epochs\""), Ok(Length::Whole(Interval::Epoch)));
        assert_eq!(parse("\"steps\""), Ok(Length::Whole(Interval::Step)));
        assert_eq!(parse("\"30%\""), Ok(Length::Percent(30.0)));
        assert_eq!(parse("\"1.42 %\""), Ok(Length::Percent(1.42)));
        for length in [
            Length::Ticks(7),
            Length::Whole(Interval::Step),
            Length::Percent(12.5),
        ] {
            let json = serde_json::to_string(&length).unwrap();
            assert_eq!(serde_json::from_str::<Length>(&json).unwrap(), length);
        }
    }

    #[test]
    fn malformed_lengths_say_what_is_accepted() {
        for bad in [
            "-3",
            "1.5",
            "\"30\"",
            "\"0%\"",
            "\"-5%\"",
            "\"halfway\"",
            "\"nan%\"",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("\"30%\""), "{bad}: {err}");
        }
    }

    #[test]
    fn shares_round_to_the_nearest_tick_of_the_clock() {
        let run = Span::of_run(50, 704);
        let resolve = |length: Length, clock| length.resolve("t", run, clock, 1).unwrap();
        assert_eq!(
            resolve(Length::Percent(30.0), Interval::Epoch),
            Length::Ticks(15)
        );
        assert_eq!(
            resolve(Length::Whole(Interval::Epoch), Interval::Epoch),
            Length::Ticks(50)
        );
        assert_eq!(
            resolve(Length::Whole(Interval::Step), Interval::Step),
            Length::Ticks(35_200)
        );
        assert_eq!(
            resolve(Length::Percent(1.42), Interval::Step),
            Length::Ticks(500)
        );
        assert_eq!(resolve(Length::Ticks(3), Interval::Epoch), Length::Ticks(3));
        let short = Span::of_run(2, 4);
        let at_least = |min| Length::Percent(10.0).resolve("t", short, Interval::Epoch, min);
        assert_eq!(at_least(0), Ok(Length::Ticks(0)));
        assert_eq!(at_least(1), Ok(Length::Ticks(1)));
    }

    #[test]
    fn the_whole_run_must_be_counted_on_the_schedules_clock() {
        let err = Length::Whole(Interval::Step)
            .resolve("t_max", Span::of_run(5, 3), Interval::Epoch, 1)
            .unwrap_err();
        assert_eq!(err.field, "t_max");
        assert!(err.message.contains("\"epochs\""), "{err}");
    }

    #[test]
    fn an_empty_stretch_has_no_share() {
        let empty = Span::of_run(4, 10).after(40, Interval::Step);
        let err = Length::Percent(50.0)
            .resolve("total_iters", empty, Interval::Step, 1)
            .unwrap_err();
        assert!(err.message.contains("never comes"), "{err}");
    }

    #[test]
    fn a_relative_length_cannot_be_counted_before_it_is_resolved() {
        assert_eq!(Length::Ticks(4).ticks("t_max"), Ok(4));
        let err = Length::Percent(30.0).ticks("step_size").unwrap_err();
        assert_eq!(err.field, "step_size");
        assert!(err.message.contains("resolve"), "{err}");
    }

    #[test]
    fn spans_split_at_ticks_of_either_clock() {
        let run = Span::of_run(10, 7);
        assert_eq!(run.after(3, Interval::Epoch).steps, 49);
        assert_eq!(run.first(3, Interval::Epoch).steps, 21);
        assert_eq!(run.after(100, Interval::Step).steps, 0);
        assert_eq!(run.first(100, Interval::Step).steps, 70);
        assert_eq!(
            run.after(5, Interval::Step).ticks(Interval::Epoch),
            65.0 / 7.0
        );
    }
}
