//! ResNet-18 for 32×32 images (the CIFAR variant of He et al. 2016): a 3×3 stride-1 stem and no
//! max-pool, four stages of two basic blocks, global average pooling and a linear head. Tensor
//! names are torchvision's `resnet18` names, so its `state_dict` and lrlab's weights are one
//! format.

use std::path::Path;

use candle_core::{DType, Device, ModuleT, Result, Tensor};
use lrlab_kernels::{Activation, ConvParams};
use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpoint;
use crate::error::{self, ModelError};
use crate::layers::{BatchNorm2d, Conv2d, Linear, conv2d, linear};
use crate::params::{Builder, Parameters};
use crate::precision::Compute;

/// The shape of a CIFAR ResNet-18.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResNetConfig {
    /// Channels of the first stage; the stages have `width × [1, 2, 4, 8]`. 64 is the published
    /// network; a narrow one (8, 16) trains quickly on a CPU.
    pub width: usize,
    /// Number of classes of the linear head.
    pub num_classes: usize,
}

impl Default for ResNetConfig {
    fn default() -> Self {
        Self {
            width: 64,
            num_classes: 10,
        }
    }
}

/// Two 3×3 convolutions with batch norm and a shortcut (a strided 1×1 convolution with batch
/// norm where the shape changes).
#[derive(Clone, Debug)]
struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    downsample: Option<(Conv2d, BatchNorm2d)>,
}

impl BasicBlock {
    fn new(
        b: &mut Builder,
        name: &str,
        (from, to): (usize, usize),
        stride: usize,
    ) -> error::Result<Self> {
        let hint = HINT;
        let conv = |stride| ConvParams {
            padding: 1,
            stride,
            ..ConvParams::default()
        };
        let downsample = if stride != 1 || from != to {
            let config = ConvParams {
                stride,
                ..ConvParams::default()
            };
            let conv = conv2d(
                b,
                &format!("{name}.downsample.0"),
                (from, to),
                1,
                config,
                hint,
            )?;
            let norm = BatchNorm2d::new(b, &format!("{name}.downsample.1"), to, hint)?;
            Some((conv, norm))
        } else {
            None
        };
        Ok(Self {
            conv1: conv2d(
                b,
                &format!("{name}.conv1"),
                (from, to),
                3,
                conv(stride),
                hint,
            )?,
            bn1: BatchNorm2d::new(b, &format!("{name}.bn1"), to, hint)?,
            conv2: conv2d(b, &format!("{name}.conv2"), (to, to), 3, conv(1), hint)?,
            bn2: BatchNorm2d::new(b, &format!("{name}.bn2"), to, hint)?,
            downsample,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (relu, identity) = (Activation::Relu, Activation::Identity);
        let y = self.conv1.forward(x)?;
        let y = self.bn1.forward_t(&y, None, relu, train)?;
        let shortcut = match &self.downsample {
            Some((conv, norm)) => norm.forward_t(&conv.forward(x)?, None, identity, train)?,
            None => x.clone(),
        };
        // relu(bn2(conv2(y)) + shortcut), the addition and the ReLU in the normalisation's pass.
        let y = self.conv2.forward(&y)?;
        self.bn2.forward_t(&y, Some(&shortcut), relu, train)
    }
}

const HINT: &str = "`width` and `num_classes` of the ResNet must match the checkpoint's";

/// ResNet-18, CIFAR variant. Input `(N, 3, H, W)` normalised images; output `(N, classes)`
/// logits. `forward_t(x, true)` uses batch statistics and moves the running ones.
#[derive(Clone, Debug)]
pub struct ResNet18 {
    config: ResNetConfig,
    conv1: Conv2d,
    bn1: BatchNorm2d,
    blocks: Vec<BasicBlock>,
    fc: Linear,
    parameters: Parameters,
    compute: Compute,
}

impl ResNet18 {
    /// A fresh network, initialised as torchvision's (He-normal convolutions on fan-out, unit
    /// batch norms, PyTorch's default linear head), every value drawn from `seed`.
    pub fn new(config: ResNetConfig, seed: u64, device: &Device) -> error::Result<Self> {
        Self::build(config, Builder::fresh(seed, device))
    }

    /// The network saved in `files` (a torchvision-named safetensors `state_dict`, possibly
    /// sharded); width and classes are read from the tensor shapes. Every tensor must be
    /// present and none may be left over, as in PyTorch's `load_state_dict(strict=True)`.
    pub fn load(files: &[impl AsRef<Path>], device: &Device) -> error::Result<Self> {
        let checkpoint = Checkpoint::read(files, |name| Some(name.to_owned()))?;
        let width = checkpoint.dims("conv1.weight").map_or(64, |d| d[0]);
        let num_classes = checkpoint.dims("fc.weight").map_or(10, |d| d[0]);
        let config = ResNetConfig { width, num_classes };
        Self::build(
            config,
            Builder::from_checkpoint(checkpoint, |_| false, 0, device),
        )
    }

    fn build(config: ResNetConfig, mut b: Builder) -> error::Result<Self> {
        let ResNetConfig { width, num_classes } = config;
        if width == 0 || num_classes == 0 {
            return Err(ModelError::Setting {
                field: "width",
                message: format!(
                    "width {width} and num_classes {num_classes}: both must be at least 1 \
                     (the published network has width 64)"
                ),
            });
        }
        let stem = ConvParams {
            padding: 1,
            ..ConvParams::default()
        };
        let conv1 = conv2d(&mut b, "conv1", (3, width), 3, stem, HINT)?;
        let bn1 = BatchNorm2d::new(&mut b, "bn1", width, HINT)?;
        let mut blocks = Vec::with_capacity(8);
        let mut channels = width;
        for (stage, multiple) in [1, 2, 4, 8].into_iter().enumerate() {
            let out = width * multiple;
            for index in 0..2 {
                let stride = if stage > 0 && index == 0 { 2 } else { 1 };
                let name = format!("layer{}.{index}", stage + 1);
                blocks.push(BasicBlock::new(&mut b, &name, (channels, out), stride)?);
                channels = out;
            }
        }
        let fc = linear(&mut b, "fc", (channels, num_classes), None, HINT)?;
        let compute = b.compute();
        let (parameters, _, unused, files) = b.finish();
        if let (Some(files), false) = (files, unused.is_empty()) {
            return Err(ModelError::UnexpectedTensors {
                files,
                names: unused,
            });
        }
        Ok(Self {
            config,
            conv1,
            bn1,
            blocks,
            fc,
            parameters,
            compute,
        })
    }

    /// The shape of the network.
    pub fn config(&self) -> ResNetConfig {
        self.config
    }

    /// Its tensors by torchvision name.
    pub fn parameters(&self) -> &Parameters {
        &self.parameters
    }

    /// Computes its products and convolutions in `dtype` from now on, one of
    /// [`COMPUTE_DTYPES`](crate::COMPUTE_DTYPES) (the parameters stay `f32`).
    pub fn set_compute_dtype(&self, dtype: DType) -> Result<()> {
        self.compute.set(dtype)
    }

    /// The type it computes its products and convolutions in.
    pub fn compute_dtype(&self) -> DType {
        self.compute.get()
    }
}

impl ModuleT for ResNet18 {
    /// `f32` logits, whatever the compute precision.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = self
            .bn1
            .forward_t(&self.conv1.forward(xs)?, None, Activation::Relu, train)?;
        for block in &self.blocks {
            x = block.forward_t(&x, train)?;
        }
        self.fc.forward(&x.mean((2, 3))?)?.to_dtype(DType::F32)
    }
}
