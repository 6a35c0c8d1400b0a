//! One module per family of schedules.

pub mod constant;
pub mod cosine;
pub mod greedy;
pub mod hypergradient;
pub(crate) mod improvement;
pub mod linear;
pub mod one_cycle;
pub mod plateau;
pub mod sequential;
pub mod step;
pub mod trend_gap;
pub mod warmup;

pub use constant::{ConstantConfig, ConstantLr};
pub use cosine::{CosineAnnealing, CosineConfig, CosineWarmRestarts, CosineWarmRestartsConfig};
pub use greedy::{GreedyConfig, GreedyLr};
pub use hypergradient::{DEFAULT_BETA, Hypergradient, HypergradientConfig, HypergradientRule};
pub use improvement::{Mode, ThresholdMode};
pub use linear::{LinearConfig, LinearLr, PolynomialConfig, PolynomialLr};
pub use one_cycle::{Anneal, OneCycle, OneCycleConfig};
pub use plateau::{Plateau, PlateauConfig};
pub use sequential::{Sequential, SequentialConfig};
pub use step::{
    ExponentialConfig, ExponentialLr, MultiStepConfig, MultiStepLr, StepConfig, StepLr,
};
pub use trend_gap::{TrendGap, TrendGapConfig};
pub use warmup::{Warmup, WarmupConfig};
