//! The registry of schedules: the `registry!` macro that declares every schedule once — its
//! module, `kind` tag, configuration and scheduler — and generates [`SchedulerConfig`] and
//! [`AnyScheduler`](crate::AnyScheduler) with their dispatch. It is invoked in
//! `schedules/mod.rs`, one line a schedule.

use crate::error::{ConfigError, ensure};
use crate::length::Span;
use crate::observation::{EpochEnd, Observation, StepEnd};
use crate::scheduler::Scheduler;
use crate::schedules::SchedulerConfig;

/// Declares each schedule once: the module (file) that holds it, then per schedule its `kind`
/// tag, its configuration (a [`ScheduleConfig`](crate::ScheduleConfig)) and the scheduler
/// that builds, with an optional doc comment (the variants' docs link the types either way). Declares the modules, re-exports their public items and generates
/// `SchedulerConfig` and `AnyScheduler` with their dispatch.
macro_rules! registry {
    ($(
        mod $module:ident {
            $(
                $(#[doc = $doc:literal])*
                $tag:literal => $variant:ident($config:ident, $scheduler:ident),
            )+
        }
    )*) => {
        $(
            pub mod $module;
            pub use $module::*;
        )*

        /// A schedule's configuration, as written in a `[scheduler]` table: `kind` names the
        /// schedule, the other keys are its parameters (unknown keys are rejected).
        ///
        /// ```
        /// # use lrlab_schedulers::SchedulerConfig;
        /// let config: SchedulerConfig = toml::from_str(r#"
        ///     kind = "cosine"
        ///     t_max = 50
        /// "#).unwrap();
        /// assert_eq!(config.kind(), "cosine");
        /// ```
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(tag = "kind")]
        pub enum SchedulerConfig {
            $($(
                $(#[doc = $doc])*
                #[doc = concat!("\n\n`kind = \"", $tag, "\"`: see [`", stringify!($config), "`].")]
                #[serde(rename = $tag)]
                $variant($config),
            )+)*
        }

        /// Any schedule, built and running. Serializes with its whole state: a deserialized
        /// copy continues bit for bit where the original stood. (With `serde_json`, enable its
        /// `float_roundtrip` feature: its default float parser may miss by one ulp.)
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(tag = "kind")]
        pub enum AnyScheduler {
            $($(
                $(#[doc = $doc])*
                #[doc = concat!("\n\n`kind = \"", $tag, "\"`: see [`", stringify!($scheduler), "`].")]
                #[serde(rename = $tag)]
                $variant($scheduler),
            )+)*
        }

        impl SchedulerConfig {
            /// Every `kind` tag, in declaration order.
            pub const KINDS: &'static [&'static str] = &[$($($tag,)+)*];

            /// The `kind` tag of this schedule.
            pub fn kind(&self) -> &'static str {
                match self {
                    $($(SchedulerConfig::$variant(_) => $tag,)+)*
                }
            }

            /// The clock the schedule ticks on (for a composite schedule, the finest of its
            /// parts'): the built schedule's [`Scheduler::interval`](crate::Scheduler::interval).
            pub fn clock(&self) -> $crate::Interval {
                match self {
                    $($(SchedulerConfig::$variant(c) => $crate::ScheduleConfig::clock(c),)+)*
                }
            }

            /// The same configuration with every length relative to the run
            /// ([`Length`](crate::Length)) turned into ticks, for a schedule that runs over
            /// `span`; numbers of ticks are kept as written.
            pub fn resolve(
                &self,
                span: $crate::Span,
            ) -> Result<SchedulerConfig, $crate::ConfigError> {
                Ok(match self {
                    $($(SchedulerConfig::$variant(c) => {
                        SchedulerConfig::$variant($crate::ScheduleConfig::resolve(c, span)?)
                    })+)*
                })
            }

            /// Checks the configuration and builds the schedule for an optimizer whose initial
            /// learning rate is `base_lr`. Every length must be a number of ticks: resolve a
            /// configuration with relative lengths first ([`SchedulerConfig::resolve`]).
            pub fn build(&self, base_lr: f64) -> Result<AnyScheduler, $crate::ConfigError> {
                $crate::error::ensure(base_lr.is_finite() && base_lr >= 0.0, "base_lr", || {
                    format!("must be a finite number ≥ 0, got {base_lr}")
                })?;
                Ok(match self {
                    $($(SchedulerConfig::$variant(c) => AnyScheduler::$variant(
                        $crate::ScheduleConfig::build(c.clone(), base_lr)?,
                    ),)+)*
                })
            }

            /// The rates the built schedule may give for an initial rate `base_lr`: its
            /// [`ScheduleConfig::bounds`](crate::ScheduleConfig::bounds).
            pub fn bounds(&self, base_lr: f64) -> $crate::RateBounds {
                match self {
                    $($(SchedulerConfig::$variant(c) => {
                        $crate::ScheduleConfig::bounds(c, base_lr)
                    })+)*
                }
            }

            /// Every registered schedule's [`examples`](crate::ScheduleConfig::examples), in
            /// declaration order: what the conformance tests run and the benchmarks time.
            pub fn examples() -> Vec<SchedulerConfig> {
                let mut examples = Vec::new();
                $($(
                    let of_kind = <$config as $crate::ScheduleConfig>::examples();
                    examples.extend(of_kind.into_iter().map(SchedulerConfig::$variant));
                )+)*
                examples
            }
        }

        impl AnyScheduler {
            /// The `kind` tag of this schedule.
            pub fn kind(&self) -> &'static str {
                match self {
                    $($(AnyScheduler::$variant(_) => $tag,)+)*
                }
            }
        }

        impl $crate::Scheduler for AnyScheduler {
            fn lr(&self) -> f64 {
                match self {
                    $($(AnyScheduler::$variant(s) => s.lr(),)+)*
                }
            }

            fn interval(&self) -> $crate::Interval {
                match self {
                    $($(AnyScheduler::$variant(s) => s.interval(),)+)*
                }
            }

            fn needs(&self) -> $crate::Signals {
                match self {
                    $($(AnyScheduler::$variant(s) => s.needs(),)+)*
                }
            }

            fn observe(&mut self, observation: &$crate::Observation) -> f64 {
                match self {
                    $($(AnyScheduler::$variant(s) => s.observe(observation),)+)*
                }
            }
        }
    };
}

impl SchedulerConfig {
    /// Builds the schedule and drives it through a whole run of `span` with steady signals
    /// (every loss 1, every accuracy ½, gradient agreement 0), checking that every step's rate is
    /// a finite number ≥ 0: the check a study makes of each arm before anything trains. The
    /// configuration must be resolved; a step costs a few nanoseconds.
    pub fn dry_run(&self, base_lr: f64, span: Span) -> Result<(), ConfigError> {
        let mut scheduler = self.build(base_lr)?;
        let steps_per_epoch = span.steps_per_epoch.max(1);
        for step in 1..=span.steps {
            let lr = scheduler.lr();
            let epoch = (step - 1) / steps_per_epoch + 1;
            ensure(lr.is_finite() && lr >= 0.0, "", || {
                format!(
                    "the rate of step {step} (epoch {epoch}) is {lr}: a dry run over {} steps \
                     must keep it a finite number ≥ 0",
                    span.steps
                )
            })?;
            scheduler.observe(&Observation::Step(StepEnd {
                step,
                epoch,
                loss: Some(1.0),
                grad_dot: Some(0.0),
                grad_cos: Some(0.0),
            }));
            if step % steps_per_epoch == 0 || step == span.steps {
                scheduler.observe(&Observation::Epoch(EpochEnd {
                    epoch,
                    step,
                    train_loss: Some(1.0),
                    train_acc: Some(0.5),
                    val_loss: Some(1.0),
                    val_acc: Some(0.5),
                }));
            }
        }
        Ok(())
    }
}
