//! Learning-rate schedules for any Rust training loop.
//!
//! `lrlab-schedulers` turns what a training loop observes — optimizer steps, epochs, losses,
//! accuracies, gradient agreement — into the learning rate of the next step. It knows nothing
//! of tensors or frameworks: anything that has a learning rate to set can use it.
//!
//! ```
//! use lrlab_schedulers::{EpochEnd, Observation, Scheduler, SchedulerConfig, StepEnd};
//!
//! // Any optimizer: here plain gradient descent on f(x) = x², from x = 3.
//! let (mut x, base_lr) = (3.0_f64, 0.1);
//! let config: SchedulerConfig = toml::from_str(r#"
//!     kind = "warmup"
//!     warmup_steps = 4
//!     start_factor = 0.25
//!     inner = { kind = "plateau", monitor = "val_loss", patience = 1, factor = 0.5 }
//! "#)?;
//! let mut scheduler = config.build(base_lr)?;
//!
//! let mut step = 0;
//! for epoch in 1..=5 {
//!     for _ in 0..4 {
//!         let lr = scheduler.lr();             // the rate for this step
//!         x -= lr * 2.0 * x;                   // the optimizer's update
//!         step += 1;
//!         scheduler.observe(&Observation::Step(StepEnd {
//!             step, epoch, loss: Some(x * x), ..Default::default()
//!         }));
//!     }
//!     let val_loss = x * x;                    // "validation"
//!     scheduler.observe(&Observation::Epoch(EpochEnd {
//!         epoch, step, val_loss: Some(val_loss), ..Default::default()
//!     }));
//! }
//! assert!(x.abs() < 0.1);
//!
//! // The whole state serializes; a restored copy continues bit for bit.
//! let saved = serde_json::to_string(&scheduler)?;
//! let restored: lrlab_schedulers::AnyScheduler = serde_json::from_str(&saved)?;
//! assert_eq!(restored, scheduler);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The protocol
//! Before each optimizer step, read [`Scheduler::lr`]. After it, report
//! [`Observation::Step`]; after each epoch's validation, report [`Observation::Epoch`]. Each
//! scheduler moves on its own [`Interval`] and ignores the other events, so one loop drives
//! every kind. That is PyTorch's protocol: the rate of epoch `e` is the rate after `e − 1` calls
//! of `scheduler.step()` (with the metric of the epoch before, for metric-driven schedules).
//!
//! # Lengths relative to the run
//! Every length of a schedule — `t_max`, `step_size`, `milestones`, `total_iters`,
//! `warmup_steps`, `patience`, … — is a [`Length`]: a number of ticks, or relative to the run
//! (`"epochs"`, `"steps"`, `"30%"`), so that one configuration serves runs of any length.
//! [`SchedulerConfig::resolve`] turns them into ticks for a run of a given [`Span`]; building a
//! schedule whose lengths are still relative is an error, and [`SchedulerConfig::dry_run`]
//! drives a resolved schedule through a whole run to check it before any training.
//!
//! ```
//! use lrlab_schedulers::{Scheduler, SchedulerConfig, Span};
//! let cosine: SchedulerConfig = toml::from_str(r#"
//!     kind = "cosine"
//!     t_max = "epochs"
//! "#)?;
//! let ten_epochs = cosine.resolve(Span::of_run(10, 100))?;
//! ten_epochs.dry_run(1e-3, Span::of_run(10, 100))?;
//! assert_eq!(ten_epochs, toml::from_str("kind = 'cosine'\nt_max = 10")?);
//! assert!(cosine.build(1e-3).is_err(), "t_max is relative until resolved");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The schedules
//! | `kind` | schedule | PyTorch |
//! | --- | --- | --- |
//! | `constant` | [`ConstantConfig`] | `ConstantLR` |
//! | `step` | [`StepConfig`] | `StepLR` |
//! | `multistep` | [`MultiStepConfig`] | `MultiStepLR` |
//! | `exponential` | [`ExponentialConfig`] | `ExponentialLR` |
//! | `cosine` | [`CosineConfig`] | `CosineAnnealingLR` |
//! | `cosine_warm_restarts` | [`CosineWarmRestartsConfig`] | `CosineAnnealingWarmRestarts` |
//! | `one_cycle` | [`OneCycleConfig`] | `OneCycleLR` |
//! | `linear` | [`LinearConfig`] | `LinearLR` |
//! | `polynomial` | [`PolynomialConfig`] | `PolynomialLR` |
//! | `warmup` | [`WarmupConfig`] | `SequentialLR` of `LinearLR` and any schedule, plateau included |
//! | `sequential` | [`SequentialConfig`] | `SequentialLR` |
//! | `plateau` | [`PlateauConfig`] | `ReduceLROnPlateau` |
//! | `greedy` | [`GreedyConfig`] | transformers' `GreedyLR` |
//! | `hypergradient` | [`HypergradientConfig`] | — (Baydin et al. 2018) |
//! | `trend_gap` | [`TrendGapConfig`] | — (lrlab's own) |
//!
//! The PyTorch schedules are computed with PyTorch's own floating-point recursions and agree
//! with it to 1e-12 relative (tested against traces recorded from PyTorch 2.15); GreedyLR
//! agrees with transformers' implementation (5.24) to the same tolerance.
//!
//! # Adding a schedule
//! A schedule is one file in `src/schedules/` and one line in `src/schedules/mod.rs`. The file
//! holds a configuration implementing [`ScheduleConfig`] — how it builds, the clock its lengths
//! count, its [`RateBounds`] and a few [`examples`](ScheduleConfig::examples) — and a scheduler
//! implementing [`Scheduler`], both with serde; the line,
//! `mod bold_driver { "bold_driver" => BoldDriver(BoldDriverConfig, BoldDriver), }`, declares
//! the module and adds the `kind` to [`SchedulerConfig`] and [`AnyScheduler`]. The conformance
//! tests (`tests/conformance.rs`) then hold it, with every other registered schedule, to the
//! properties each must have: a finite rate within its bounds for any signals (NaN and ±∞
//! included), a save that restores bit for bit, a rate that is a function of the observations,
//! no signal read outside [`Scheduler::needs`], and a whole 50-epoch plan run. lrlab's README
//! walks through a complete example.

/// Defines the functions that serde's `#[serde(default = "…")]` attributes call.
macro_rules! serde_defaults {
    ($($name:ident: $ty:ty = $value:expr;)*) => {
        $(fn $name() -> $ty { $value })*
    };
}

/// Implements [`ScheduleConfig::clock`] and [`ScheduleConfig::resolve`] inside a
/// configuration's `impl ScheduleConfig`: `clock`, a function of the configuration, gives the
/// clock its lengths count, and each field listed is a [`Length`] resolved against the run's
/// span, at least its minimum (`t_max >= 1`, `patience >= 0`).
macro_rules! lengths {
    (clock = $clock:expr, [$($field:ident >= $min:literal),* $(,)?]) => {
        fn clock(&self) -> $crate::observation::Interval {
            let clock: fn(&Self) -> $crate::observation::Interval = $clock;
            clock(self)
        }

        fn resolve(
            &self,
            span: $crate::length::Span,
        ) -> Result<Self, $crate::error::ConfigError> {
            let clock = $crate::scheduler::ScheduleConfig::clock(self);
            let _ = (span, clock); // a configuration without lengths reads neither
            Ok(Self {
                $($field: self.$field.resolve(stringify!($field), span, clock, $min)?,)*
                ..self.clone()
            })
        }
    };
}

mod error;
mod float;
mod length;
mod observation;
mod rate;
#[macro_use]
mod registry;
mod scheduler;
pub mod schedules;

pub use error::ConfigError;
pub use length::{Length, Span};
pub use observation::{EpochEnd, Interval, Observation, Signal, Signals, StepEnd};
pub use rate::Rate;
pub use scheduler::{Clock, RateBounds, ScheduleConfig, Scheduler, Ticking};
pub use schedules::*;
