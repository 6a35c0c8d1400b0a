//! The schedules, one module (file) per schedule or family of schedules, each registered by
//! one line below: its module, `kind` tag, configuration and scheduler.
//!
//! A new schedule is a file in this folder — its configuration implementing
//! [`ScheduleConfig`](crate::ScheduleConfig), its scheduler implementing
//! [`Scheduler`](crate::Scheduler), both with serde — and one line here, e.g.
//! `mod halving { "halving" => Halving(HalvingConfig, Halving), }`. `experiment`, `schedule`,
//! `analyze` and the configuration files accept its `kind` at once, and the conformance tests
//! (`tests/conformance.rs`) run its examples without a test written for it.

pub(crate) mod improvement;

pub use improvement::{Mode, ThresholdMode};

registry! {
    mod constant {
        /// A constant rate (`ConstantLR`).
        "constant" => Constant(ConstantConfig, ConstantLr),
    }
    mod step {
        /// Step decay (`StepLR`).
        "step" => Step(StepConfig, StepLr),
        /// Decay at milestones (`MultiStepLR`).
        "multistep" => MultiStep(MultiStepConfig, MultiStepLr),
        /// Exponential decay (`ExponentialLR`).
        "exponential" => Exponential(ExponentialConfig, ExponentialLr),
    }
    mod cosine {
        /// Cosine annealing (`CosineAnnealingLR`).
        "cosine" => Cosine(CosineConfig, CosineAnnealing),
        /// Cosine annealing with warm restarts (`CosineAnnealingWarmRestarts`).
        "cosine_warm_restarts" => CosineWarmRestarts(CosineWarmRestartsConfig, CosineWarmRestarts),
    }
    mod one_cycle {
        /// The one-cycle policy (`OneCycleLR`).
        "one_cycle" => OneCycle(OneCycleConfig, OneCycle),
    }
    mod linear {
        /// A linear ramp (`LinearLR`).
        "linear" => Linear(LinearConfig, LinearLr),
        /// Polynomial decay (`PolynomialLR`).
        "polynomial" => Polynomial(PolynomialConfig, PolynomialLr),
    }
    mod warmup {
        /// Linear warmup in front of another schedule.
        "warmup" => Warmup(WarmupConfig, Warmup),
    }
    mod sequential {
        /// Schedules in sequence (`SequentialLR`).
        "sequential" => Sequential(SequentialConfig, Sequential),
    }
    mod plateau {
        /// Reduce on plateau (`ReduceLROnPlateau`).
        "plateau" => Plateau(PlateauConfig, Plateau),
    }
    mod greedy {
        /// GreedyLR.
        "greedy" => Greedy(GreedyConfig, GreedyLr),
    }
    mod hypergradient {
        /// Hypergradient descent.
        "hypergradient" => Hypergradient(HypergradientConfig, Hypergradient),
    }
    mod trend_gap {
        /// lrlab's trend-gap schedule.
        "trend_gap" => TrendGap(TrendGapConfig, TrendGap),
    }
}
