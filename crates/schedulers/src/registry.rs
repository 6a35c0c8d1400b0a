//! Every schedule under one name: [`SchedulerConfig`] to configure one, [`AnyScheduler`] to
//! run and save it.

use crate::error::{ConfigError, ensure};
use crate::length::{Lengths, Span};
use crate::observation::{EpochEnd, Interval, Observation, Signals, StepEnd};
use crate::scheduler::Scheduler;
use crate::schedules::*;
use serde::{Deserialize, Serialize};

/// Declares each schedule once: its `kind` tag, its configuration and its scheduler, and how
/// the one builds the other. Generates both enums and their dispatch.
macro_rules! registry {
    ($(
        $(#[doc = $doc:literal])*
        $tag:literal => $variant:ident($config:ty, $scheduler:ty) = |$c:ident, $lr:pat_param| $build:expr;
    )*) => {
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
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind")]
        pub enum SchedulerConfig {
            $(
                $(#[doc = $doc])*
                #[serde(rename = $tag)]
                $variant($config),
            )*
        }

        /// Any schedule, built and running. Serializes with its whole state: a deserialized
        /// copy continues bit for bit where the original stood. (With `serde_json`, enable its
        /// `float_roundtrip` feature: its default float parser may miss by one ulp.)
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind")]
        pub enum AnyScheduler {
            $(
                $(#[doc = $doc])*
                #[serde(rename = $tag)]
                $variant($scheduler),
            )*
        }

        impl SchedulerConfig {
            /// Every `kind` tag, in declaration order.
            pub const KINDS: &'static [&'static str] = &[$($tag),*];

            /// The `kind` tag of this schedule.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(SchedulerConfig::$variant(_) => $tag,)*
                }
            }

            /// The clock the schedule ticks on (for a composite schedule, the finest of its
            /// parts'): the built schedule's [`Scheduler::interval`].
            pub fn clock(&self) -> Interval {
                match self {
                    $(SchedulerConfig::$variant(config) => config.clock(),)*
                }
            }

            /// The same configuration with every length relative to the run
            /// ([`Length`](crate::Length)) turned into ticks, for a schedule that runs over
            /// `span`; numbers of ticks are kept as written.
            pub fn resolve(&self, span: Span) -> Result<SchedulerConfig, ConfigError> {
                Ok(match self {
                    $(SchedulerConfig::$variant(config) => {
                        SchedulerConfig::$variant(config.resolve(span)?)
                    })*
                })
            }

            /// Checks the configuration and builds the schedule for an optimizer whose initial
            /// learning rate is `base_lr`. Every length must be a number of ticks: resolve a
            /// configuration with relative lengths first ([`SchedulerConfig::resolve`]).
            pub fn build(&self, base_lr: f64) -> Result<AnyScheduler, ConfigError> {
                ensure(base_lr.is_finite() && base_lr >= 0.0, "base_lr", || {
                    format!("must be a finite number ≥ 0, got {base_lr}")
                })?;
                Ok(match self {
                    $(SchedulerConfig::$variant(config) => {
                        let ($c, $lr) = (config.clone(), base_lr);
                        AnyScheduler::$variant($build?)
                    })*
                })
            }
        }

        impl AnyScheduler {
            /// The `kind` tag of this schedule.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(AnyScheduler::$variant(_) => $tag,)*
                }
            }
        }

        impl Scheduler for AnyScheduler {
            fn lr(&self) -> f64 {
                match self {
                    $(AnyScheduler::$variant(s) => s.lr(),)*
                }
            }

            fn interval(&self) -> Interval {
                match self {
                    $(AnyScheduler::$variant(s) => s.interval(),)*
                }
            }

            fn needs(&self) -> Signals {
                match self {
                    $(AnyScheduler::$variant(s) => s.needs(),)*
                }
            }

            fn observe(&mut self, observation: &Observation) -> f64 {
                match self {
                    $(AnyScheduler::$variant(s) => s.observe(observation),)*
                }
            }
        }
    };
}

registry! {
    /// A constant rate (`ConstantLR`); see [`ConstantConfig`].
    "constant" => Constant(ConstantConfig, ConstantLr) = |c, lr| ConstantLr::new(c, lr);
    /// Step decay (`StepLR`); see [`StepConfig`].
    "step" => Step(StepConfig, StepLr) = |c, lr| StepLr::new(c, lr);
    /// Decay at milestones (`MultiStepLR`); see [`MultiStepConfig`].
    "multistep" => MultiStep(MultiStepConfig, MultiStepLr) = |c, lr| MultiStepLr::new(c, lr);
    /// Exponential decay (`ExponentialLR`); see [`ExponentialConfig`].
    "exponential" => Exponential(ExponentialConfig, ExponentialLr) = |c, lr| ExponentialLr::new(c, lr);
    /// Cosine annealing (`CosineAnnealingLR`); see [`CosineConfig`].
    "cosine" => Cosine(CosineConfig, CosineAnnealing) = |c, lr| CosineAnnealing::new(c, lr);
    /// Cosine annealing with warm restarts (`CosineAnnealingWarmRestarts`); see
    /// [`CosineWarmRestartsConfig`].
    "cosine_warm_restarts" => CosineWarmRestarts(CosineWarmRestartsConfig, CosineWarmRestarts) = |c, lr| CosineWarmRestarts::new(c, lr);
    /// The one-cycle policy (`OneCycleLR`); see [`OneCycleConfig`].
    "one_cycle" => OneCycle(OneCycleConfig, OneCycle) = |c, _| OneCycle::new(c);
    /// A linear ramp (`LinearLR`); see [`LinearConfig`].
    "linear" => Linear(LinearConfig, LinearLr) = |c, lr| LinearLr::new(c, lr);
    /// Polynomial decay (`PolynomialLR`); see [`PolynomialConfig`].
    "polynomial" => Polynomial(PolynomialConfig, PolynomialLr) = |c, lr| PolynomialLr::new(c, lr);
    /// Linear warmup in front of another schedule; see [`WarmupConfig`].
    "warmup" => Warmup(WarmupConfig, Warmup) = |c, lr| Warmup::new(c, lr);
    /// Schedules in sequence (`SequentialLR`); see [`SequentialConfig`].
    "sequential" => Sequential(SequentialConfig, Sequential) = |c, lr| Sequential::new(c, lr);
    /// Reduce on plateau (`ReduceLROnPlateau`); see [`PlateauConfig`].
    "plateau" => Plateau(PlateauConfig, Plateau) = |c, lr| Plateau::new(c, lr);
    /// GreedyLR; see [`GreedyConfig`].
    "greedy" => Greedy(GreedyConfig, GreedyLr) = |c, lr| GreedyLr::new(c, lr);
    /// Hypergradient descent; see [`HypergradientConfig`].
    "hypergradient" => Hypergradient(HypergradientConfig, Hypergradient) = |c, lr| Hypergradient::new(c, lr);
    /// lrlab's trend-gap schedule; see [`TrendGapConfig`].
    "trend_gap" => TrendGap(TrendGapConfig, TrendGap) = |c, lr| TrendGap::new(c, lr);
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
