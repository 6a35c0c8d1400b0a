//! Which device a run uses.

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// The device asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceChoice {
    /// The first CUDA GPU when this build has the `cuda` feature and one is present, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// The first CUDA GPU; an error when there is none or the build lacks the `cuda` feature.
    Cuda,
}

impl DeviceChoice {
    /// The candle device.
    pub fn device(self) -> Result<Device> {
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Auto => Ok(Device::cuda_if_available(0)?),
            DeviceChoice::Cuda if !cfg!(feature = "cuda") => Err(TrainError::Config {
                field: "device",
                message: "`cuda` needs a build with the `cuda` feature \
                          (cargo xtask --features cuda …); use `cpu` or `auto`"
                    .into(),
            }),
            DeviceChoice::Cuda => Ok(Device::new_cuda(0)?),
        }
    }
}
