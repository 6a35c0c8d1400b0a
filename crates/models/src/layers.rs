//! Layers that must train: candle-nn's fused layer norm and softmax record no backward pass, its
//! batch norm keeps no `num_batches_tracked`, and the CPU random generator cannot be seeded, so
//! these are built here on `lrlab-kernels`' differentiable operations, with seeded dropout.
//! Products and convolutions run in the model's [`Compute`] precision, normalisations in `f32`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use lrlab_kernels::{Activation, BatchNormalised, ConvParams, DropoutMask, Epilogue};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::error;
use crate::params::{Builder, Init};
use crate::precision::Compute;

/// A linear layer `y = x Wᵀ + b` in the model's compute precision.
#[derive(Clone, Debug)]
pub(crate) struct Linear {
    weight: Tensor,
    bias: Tensor,
    compute: Compute,
}

impl Linear {
    /// `x Wᵀ + b`, in the compute precision whatever `x`'s type.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let c = &self.compute;
        lrlab_kernels::linear(
            &c.cast(x)?,
            &c.cast(&self.weight)?,
            Some(&c.cast(&self.bias)?),
        )
    }

    /// `gelu_erf(x Wᵀ + b)`, in the compute precision whatever `x`'s type: one operation.
    pub fn forward_gelu(&self, x: &Tensor) -> Result<Tensor> {
        let c = &self.compute;
        lrlab_kernels::linear_gelu(&c.cast(x)?, &c.cast(&self.weight)?, &c.cast(&self.bias)?)
    }
}

/// A linear layer with PyTorch's default initialisation (uniform on ±1/√fan_in for weight and
/// bias), or `weight_init` and a zero bias.
pub(crate) fn linear(
    b: &mut Builder,
    name: &str,
    (fan_in, fan_out): (usize, usize),
    weight_init: Option<Init>,
    hint: &str,
) -> error::Result<Linear> {
    let bound = 1.0 / (fan_in as f64).sqrt();
    let (weight_init, bias_init) = match weight_init {
        Some(init) => (init, Init::Constant(0.0)),
        None => (Init::Uniform(bound), Init::Uniform(bound)),
    };
    let weight = b.trainable(
        &format!("{name}.weight"),
        &[fan_out, fan_in],
        weight_init,
        hint,
    )?;
    let bias = b.trainable(&format!("{name}.bias"), &[fan_out], bias_init, hint)?;
    Ok(Linear {
        weight,
        bias,
        compute: b.compute(),
    })
}

/// A bias-free 2-d convolution in the model's compute precision.
#[derive(Clone, Debug)]
pub(crate) struct Conv2d {
    weight: Tensor,
    params: ConvParams,
    compute: Compute,
}

impl Conv2d {
    /// The convolution of `x`, in the compute precision whatever `x`'s type.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let c = &self.compute;
        lrlab_kernels::conv2d(&c.cast(x)?, &c.cast(&self.weight)?, self.params)
    }
}

/// A bias-free square convolution, He-initialised for ReLU on fan-out as torchvision's ResNet is.
pub(crate) fn conv2d(
    b: &mut Builder,
    name: &str,
    (channels_in, channels_out): (usize, usize),
    kernel: usize,
    params: ConvParams,
    hint: &str,
) -> error::Result<Conv2d> {
    let fan_out = channels_out * kernel * kernel;
    let init = Init::Normal((2.0 / fan_out as f64).sqrt());
    let shape = [channels_out, channels_in, kernel, kernel];
    let weight = b.trainable(&format!("{name}.weight"), &shape, init, hint)?;
    Ok(Conv2d {
        weight,
        params,
        compute: b.compute(),
    })
}

/// Layer normalisation over the last dimension, differentiable in every input.
#[derive(Clone, Debug)]
pub(crate) struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// `name.weight` (ones) and `name.bias` (zeros) of size `features`.
    pub fn new(
        b: &mut Builder,
        name: &str,
        features: usize,
        eps: f64,
        hint: &str,
    ) -> error::Result<Self> {
        let weight = b.trainable(
            &format!("{name}.weight"),
            &[features],
            Init::Constant(1.0),
            hint,
        )?;
        let bias = b.trainable(
            &format!("{name}.bias"),
            &[features],
            Init::Constant(0.0),
            hint,
        )?;
        Ok(Self { weight, bias, eps })
    }

    /// `(x − mean) / √(var + eps) · weight + bias`, with the biased variance, as PyTorch; in
    /// `f32` whatever `x`'s type.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.to_dtype(DType::F32)?;
        lrlab_kernels::layer_norm(&x, &self.weight, &self.bias, self.eps)
    }
}

/// Batch normalisation over `(N, C, H, W)` with PyTorch's semantics: batch statistics in
/// training (biased for normalising, unbiased for the running variance), running statistics in
/// evaluation, `momentum` weighting the newest batch.
#[derive(Clone, Debug)]
pub(crate) struct BatchNorm2d {
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    num_batches_tracked: Arc<AtomicI64>,
    momentum: f64,
    eps: f64,
    compute: Compute,
}

impl BatchNorm2d {
    /// PyTorch's defaults: momentum 0.1, eps 1e-5.
    pub const MOMENTUM: f64 = 0.1;
    /// See [`Self::MOMENTUM`].
    pub const EPS: f64 = 1e-5;

    /// The five tensors of torchvision's `BatchNorm2d` under `name`.
    pub fn new(b: &mut Builder, name: &str, channels: usize, hint: &str) -> error::Result<Self> {
        let shape = [channels];
        Ok(Self {
            weight: b.trainable(&format!("{name}.weight"), &shape, Init::Constant(1.0), hint)?,
            bias: b.trainable(&format!("{name}.bias"), &shape, Init::Constant(0.0), hint)?,
            running_mean: b.buffer(
                &format!("{name}.running_mean"),
                &shape,
                Init::Constant(0.0),
                hint,
            )?,
            running_var: b.buffer(
                &format!("{name}.running_var"),
                &shape,
                Init::Constant(1.0),
                hint,
            )?,
            num_batches_tracked: b.counter(&format!("{name}.num_batches_tracked"), hint)?,
            momentum: Self::MOMENTUM,
            eps: Self::EPS,
            compute: b.compute(),
        })
    }

    /// Normalises `x`, adds `residual` and applies `activation`, in `f32` (returned in the
    /// compute precision); in training, also moves the running statistics.
    pub fn forward_t(
        &self,
        x: &Tensor,
        residual: Option<&Tensor>,
        activation: Activation,
        train: bool,
    ) -> Result<Tensor> {
        let x = &x.to_dtype(DType::F32)?;
        let residual = residual.map(|r| r.to_dtype(DType::F32)).transpose()?;
        let epilogue = Epilogue {
            residual: residual.as_ref(),
            activation,
        };
        if !train {
            let scale = (&self.weight / (self.running_var.as_tensor() + self.eps)?.sqrt()?)?;
            let shift = (&self.bias - (self.running_mean.as_tensor() * &scale)?)?;
            let y = lrlab_kernels::batch_norm_eval(x, &scale, &shift, epilogue)?;
            return self.compute.cast(&y);
        }
        let (n, _, h, w) = x.dims4()?;
        let BatchNormalised {
            output,
            mean,
            variance,
        } = lrlab_kernels::batch_norm_train(x, &self.weight, &self.bias, self.eps, epilogue)?;
        self.update_running(&mean, &variance, (n * h * w) as f64)?;
        self.compute.cast(&output)
    }

    /// Moves the running statistics towards a batch's mean and biased variance over `count`
    /// values per channel (the variance made unbiased, as PyTorch).
    fn update_running(&self, mean: &Tensor, variance: &Tensor, count: f64) -> Result<()> {
        let m = self.momentum;
        let new_mean = ((self.running_mean.as_tensor() * (1.0 - m))? + (mean * m)?)?;
        let unbiased = m * count / (count - 1.0).max(1.0);
        let new_var = ((self.running_var.as_tensor() * (1.0 - m))? + (variance * unbiased)?)?;
        self.running_mean.set(&new_mean)?;
        self.running_var.set(&new_var)?;
        self.num_batches_tracked.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Where a model's dropout masks are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MaskSource {
    /// On the host, in parallel blocks of ChaCha8, then copied to the tensors' device: the CPU's
    /// path (there the copy is free).
    Host,
    /// On the tensors' device, from the device's own generator (cuRAND on CUDA) reseeded at the
    /// first mask of every step: no random draws on the host and nothing copied per step.
    Device,
}

impl MaskSource {
    /// The host's masks on the CPU, the device's generator anywhere else.
    pub fn for_device(device: &Device) -> Self {
        if device.is_cpu() {
            Self::Host
        } else {
            Self::Device
        }
    }
}

/// The random stream of a model's dropout layers: each mask is a pure function of the seed,
/// the stream (set once per training step) and the mask's rank within the step, so a run
/// resumed at step `s` draws the masks an uninterrupted run drew (on the same kind of device:
/// the host's and a GPU's generators draw different masks).
#[derive(Debug)]
pub(crate) struct DropoutRng {
    seed: u64,
    source: MaskSource,
    stream: AtomicU64,
    draws: AtomicU64,
    /// The generator that stands in for a device's on the CPU, whose candle generator cannot
    /// be seeded: only [`MaskSource::Device`] forced onto the CPU draws from it.
    cpu_uniforms: Mutex<ChaCha8Rng>,
}

/// Elements per independently seeded block of a host mask (so that blocks fill in parallel).
const MASK_BLOCK: usize = 1 << 16;

impl DropoutRng {
    /// A stream seeded by `seed`, at stream 0, drawing its masks from `source`.
    pub fn new(seed: u64, source: MaskSource) -> Self {
        Self {
            seed,
            source,
            stream: AtomicU64::new(0),
            draws: AtomicU64::new(0),
            cpu_uniforms: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        }
    }

    /// Starts stream `stream` (for instance the optimizer step about to run).
    pub fn set_stream(&self, stream: u64) {
        self.stream.store(stream, Ordering::Relaxed);
        self.draws.store(0, Ordering::Relaxed);
    }

    /// A `u8` keep-mask of `shape` on `device`: 0 at probability `p`, 1 elsewhere.
    fn keep(&self, shape: &Shape, device: &Device, p: f64) -> Result<Tensor> {
        let draw = self.draws.fetch_add(1, Ordering::Relaxed);
        let step_key = mix(self.seed, self.stream.load(Ordering::Relaxed));
        match self.source {
            MaskSource::Host => host_keep_mask(shape, device, p, mix(step_key, draw)),
            MaskSource::Device => {
                if draw == 0 {
                    self.reseed_device(device, step_key)?;
                }
                self.device_uniforms(shape, device)?.ge(p)
            }
        }
    }

    /// Restarts the device's generator at `key`, so that the step's masks, drawn in the
    /// forward pass's order, are a function of (seed, step) alone.
    fn reseed_device(&self, device: &Device, key: u64) -> Result<()> {
        if device.is_cpu() {
            *lock(&self.cpu_uniforms) = ChaCha8Rng::seed_from_u64(key);
            Ok(())
        } else {
            device.set_seed(key)
        }
    }

    /// `f32` numbers uniform on [0, 1) of `shape`, drawn on `device`.
    fn device_uniforms(&self, shape: &Shape, device: &Device) -> Result<Tensor> {
        if !device.is_cpu() {
            return Tensor::rand(0f32, 1f32, shape, device);
        }
        let mut rng = lock(&self.cpu_uniforms);
        let uniforms = (0..shape.elem_count())
            .map(|_| rng.random::<f32>())
            .collect();
        Tensor::from_vec(uniforms, shape, device)
    }
}

/// `mutex`'s guard, also after a panic elsewhere (a generator's state cannot be left torn).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The host's keep-mask of `shape` for `key`: independent ChaCha8 blocks filled in
/// parallel, an element dropped where its `u32` falls below `p · 2³²`.
fn host_keep_mask(shape: &Shape, device: &Device, p: f64, key: u64) -> Result<Tensor> {
    let threshold = (p * 4_294_967_296.0).min(u32::MAX as f64) as u32;
    let mut keep = vec![0u8; shape.elem_count()];
    keep.par_chunks_mut(MASK_BLOCK)
        .enumerate()
        .for_each(|(block, out)| {
            let mut rng = ChaCha8Rng::seed_from_u64(mix(key, block as u64));
            for k in out {
                *k = u8::from(rng.next_u32() >= threshold);
            }
        });
    Tensor::from_vec(keep, shape, device)
}

/// SplitMix64 of `a` combined with `b`: independent-looking keys from counters.
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Inverted dropout with probability `p`, drawing from a shared [`DropoutRng`]; the identity in
/// evaluation or when `p` is 0.
#[derive(Clone, Debug)]
pub(crate) struct Dropout {
    p: f64,
    rng: Arc<DropoutRng>,
}

impl Dropout {
    /// Dropout at probability `p`.
    pub fn new(p: f64, rng: &Arc<DropoutRng>) -> Self {
        Self {
            p,
            rng: rng.clone(),
        }
    }

    /// `x` with each element zeroed at probability `p` and the rest scaled by `1/(1 − p)`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        match self.mask(x.shape(), x.device(), train)? {
            Some(mask) => lrlab_kernels::dropout(x, &mask),
            None => Ok(x.clone()),
        }
    }

    /// The next mask for a tensor of `shape` on `device`, or none when this dropout is the
    /// identity (not training, or `p` = 0): for a kernel that drops out inside a larger
    /// operation.
    pub fn mask(&self, shape: &Shape, device: &Device, train: bool) -> Result<Option<DropoutMask>> {
        if !train || self.p == 0.0 {
            return Ok(None);
        }
        let keep = if self.p >= 1.0 {
            Tensor::zeros(shape, DType::U8, device)?
        } else {
            self.rng.keep(shape, device, self.p)?
        };
        DropoutMask::new(keep, self.p).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    fn dropped_fraction(rng: &DropoutRng, shape: &[usize], p: f64) -> Result<(Tensor, f64)> {
        let like = Tensor::zeros(shape, DType::F32, &Device::Cpu)?;
        let keep = rng.keep(like.shape(), like.device(), p)?;
        let zeros = keep
            .eq(0u8)?
            .to_dtype(DType::F64)?
            .sum_all()?
            .to_scalar::<f64>()?;
        Ok((keep, zeros / like.elem_count() as f64))
    }

    /// Both sources run on the CPU: the device's path forced on, with the CPU's stand-in for the
    /// device's generator (everything but cuRAND's call is the path a GPU runs).
    const SOURCES: [MaskSource; 2] = [MaskSource::Host, MaskSource::Device];

    #[test]
    fn masks_drop_at_the_rate_asked_and_scale_the_rest() -> Result<()> {
        for source in SOURCES {
            let rng = Arc::new(DropoutRng::new(7, source));
            for p in [0.1, 0.5, 0.9] {
                let (_, dropped) = dropped_fraction(&rng, &[1000, 300], p)?;
                assert!(
                    (dropped - p).abs() < 0.005,
                    "{source:?}, p = {p}: dropped {dropped}"
                );
                let ones = Tensor::ones((1000, 300), DType::F32, &Device::Cpu)?;
                let kept = Dropout::new(p, &rng).forward_t(&ones, true)?;
                let (low, high) = (kept.min_all()?, kept.max_all()?);
                assert_eq!(low.to_scalar::<f32>()?, 0.0, "{source:?}");
                let scale = f64::from(high.to_scalar::<f32>()?);
                assert!((scale - 1.0 / (1.0 - p)).abs() < 1e-6, "{source:?}");
            }
        }
        Ok(())
    }

    #[test]
    fn masks_repeat_for_the_same_seed_stream_and_rank_only() -> Result<()> {
        for source in SOURCES {
            let draw = |seed, stream, skip| -> Result<Vec<u8>> {
                let rng = DropoutRng::new(seed, source);
                rng.set_stream(stream);
                for _ in 0..skip {
                    dropped_fraction(&rng, &[10], 0.5)?;
                }
                dropped_fraction(&rng, &[200_000], 0.5)?.0.to_vec1::<u8>()
            };
            let base = draw(1, 5, 1)?;
            assert_eq!(base, draw(1, 5, 1)?, "{source:?}");
            assert_ne!(base, draw(2, 5, 1)?, "{source:?}");
            assert_ne!(base, draw(1, 6, 1)?, "{source:?}");
            assert_ne!(base, draw(1, 5, 0)?, "{source:?}");
            // Blocks of one mask are not copies of each other.
            assert_ne!(base[..MASK_BLOCK], base[MASK_BLOCK..2 * MASK_BLOCK]);
        }
        Ok(())
    }

    #[test]
    fn a_resumed_stream_draws_the_masks_of_an_uninterrupted_one() -> Result<()> {
        for source in SOURCES {
            let step = |rng: &DropoutRng, stream| -> Result<Vec<Vec<u8>>> {
                rng.set_stream(stream);
                (0..3)
                    .map(|_| dropped_fraction(rng, &[5_000], 0.3)?.0.to_vec1::<u8>())
                    .collect()
            };
            let uninterrupted = DropoutRng::new(11, source);
            for stream in 0..4 {
                step(&uninterrupted, stream)?;
            }
            let last = step(&uninterrupted, 4)?;
            assert_eq!(last, step(&DropoutRng::new(11, source), 4)?, "{source:?}");
            assert_ne!(last[0], last[1], "{source:?}: a step's sites draw apart");
        }
        Ok(())
    }
}
