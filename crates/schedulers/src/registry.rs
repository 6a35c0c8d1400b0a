//! Every schedule under one name: [`SchedulerConfig`] to configure one, [`AnyScheduler`] to
//! run and save it.

use crate::error::{ConfigError, ensure};
use crate::observation::{Interval, Observation, Signals};
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

            /// Checks the configuration and builds the schedule for an optimizer whose initial
            /// learning rate is `base_lr`.
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
