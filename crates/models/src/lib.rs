//! ResNet-18 (CIFAR variant) and BERT sequence classifiers in candle, trainable end to end, with
//! the tensor names of torchvision and transformers so that weights move between the tools
//! unchanged.
//!
//! ```no_run
//! use candle_core::{Device, ModuleT, Tensor};
//! use lrlab_models::{ResNet18, ResNetConfig};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let device = Device::Cpu;
//! let model = ResNet18::new(ResNetConfig::default(), /* seed */ 0, &device)?;
//! assert_eq!(model.parameters().trainable_count(), 11_173_962);
//! let images = Tensor::zeros((2, 3, 32, 32), candle_core::DType::F32, &device)?;
//! let logits = model.forward_t(&images, /* train */ false)?;
//! assert_eq!(logits.dims(), [2, 10]);
//! // torchvision's resnet18 with the 3×3 stem and no max-pool reads this file with strict=True.
//! std::fs::write("resnet18.safetensors", model.parameters().to_safetensors()?)?;
//! # Ok(()) }
//! ```
//!
//! A compute type of `bf16` ([`COMPUTE_DTYPES`]) computes products and convolutions in bfloat16
//! over `f32` parameters, as PyTorch's autocast does.
//!
//! Every fresh tensor is drawn from the seed and its own name, and dropout masks from the seed,
//! the stream set per step and the mask's rank, so that runs repeat exactly.

mod bert;
mod checkpoint;
mod error;
mod layers;
mod network;
mod params;
mod precision;
mod resnet;

pub use bert::{BertClassifier, BertConfig, LoadReport};
pub use error::{ModelError, Result};
pub use network::Network;
pub use params::Parameters;
pub use precision::COMPUTE_DTYPES;
pub use resnet::{ResNet18, ResNetConfig};
