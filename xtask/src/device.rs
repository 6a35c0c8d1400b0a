//! The `--device` argument of the commands that compute.

use anyhow::Result;
use candle_core::Device;
use lrlab_trainer::DeviceChoice;

/// Which device to compute on.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum DeviceArg {
    /// A CUDA GPU when the build has one, else the CPU.
    Auto,
    /// The CPU.
    Cpu,
    /// The first CUDA GPU (a build with `--features cuda`).
    Cuda,
}

impl DeviceArg {
    /// The candle device.
    pub fn device(self) -> Result<Device> {
        let choice = match self {
            DeviceArg::Auto => DeviceChoice::Auto,
            DeviceArg::Cpu => DeviceChoice::Cpu,
            DeviceArg::Cuda => DeviceChoice::Cuda,
        };
        Ok(choice.device()?)
    }
}
