//! Inverted dropout with a given keep-mask as one operation each way: candle composes it as a
//! cast of the mask, an affine map and a product forward, and a product (with the zeros and the
//! sum of the gradient's accumulation) backward, each allocating a tensor of the activation's
//! size; this reads the one-byte mask in place of a four-byte factor.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{ELEMENTWISE_CHUNK, cpu_slice, serves_f32};

/// One draw of inverted dropout: a `u8` keep-mask, 1 where an element is kept and 0 where it
/// is dropped, and the probability `p` it was drawn at. Kept elements are scaled by
/// `1/(1 − p)`; at `p ≥ 1` every element is dropped and the scale is 0.
#[derive(Clone, Debug)]
pub struct DropoutMask {
    keep: Tensor,
    p: f64,
}

impl DropoutMask {
    /// The draw `keep` (a `u8` tensor) at probability `p`.
    pub fn new(keep: Tensor, p: f64) -> Result<Self> {
        if keep.dtype() != DType::U8 {
            candle_core::bail!("dropout: the keep-mask must be u8, not {:?}", keep.dtype());
        }
        Ok(Self { keep, p })
    }

    /// The keep-mask.
    pub fn keep(&self) -> &Tensor {
        &self.keep
    }

    /// The factor of a kept element: `1/(1 − p)`, or 0 when every element is dropped.
    pub fn scale(&self) -> f64 {
        if self.p >= 1.0 {
            0.0
        } else {
            1.0 / (1.0 - self.p)
        }
    }

    /// The mask, checked to have the input's `shape`, contiguous.
    pub(crate) fn keep_for(&self, shape: &Shape) -> Result<Tensor> {
        if self.keep.shape() != shape {
            candle_core::bail!(
                "dropout: the keep-mask must have the input's shape {:?}, not {:?}",
                shape.dims(),
                self.keep.dims()
            );
        }
        self.keep.contiguous()
    }

    /// The scale as the fused kernels apply it.
    pub(crate) fn mask_scale(&self) -> MaskScale {
        MaskScale(self.scale() as f32)
    }
}

/// A mask's scale as the fused kernels apply it: mask value `k` scales its element by
/// `k · scale`, exactly the composition's `keep as f32 · scale` (the scale for a kept element,
/// 0 for a dropped one), in a form that vectorises.
#[derive(Clone, Copy)]
pub(crate) struct MaskScale(f32);

impl MaskScale {
    /// `x` under mask value `k`.
    #[inline]
    pub(crate) fn apply(self, x: f32, k: u8) -> f32 {
        x * (f32::from(k) * self.0)
    }
}

/// `x ⊙ keep / (1 − p)` for a [`DropoutMask`] of `x`'s shape, differentiable in `x` (the mask
/// is a constant). One fused operation for `f32` on the CPU; elsewhere candle's composition,
/// with the same values.
pub fn dropout(x: &Tensor, mask: &DropoutMask) -> Result<Tensor> {
    let keep = mask.keep_for(x.shape())?;
    if serves_f32(x) {
        let op = Dropout {
            scale: mask.mask_scale(),
        };
        return x.contiguous()?.apply_op2(&keep, op);
    }
    x.mul(&(keep.to_dtype(x.dtype())? * mask.scale())?)
}

/// `dropout(x) + residual`: a sublayer's output, dropped out by `mask` (none: the identity),
/// added onto the residual stream; differentiable in both. One fused operation for `f32` on
/// the CPU, one pass each way where the composition makes two forward and, with candle's
/// accumulation of the dropped output's gradient, three backward; elsewhere the composition,
/// `x` dropped out in its own precision and cast to the residual's. The same values either way.
pub fn residual_dropout(
    x: &Tensor,
    mask: Option<&DropoutMask>,
    residual: &Tensor,
) -> Result<Tensor> {
    let Some(mask) = mask else {
        return x.to_dtype(residual.dtype())? + residual;
    };
    if serves_f32(x) && serves_f32(residual) && x.shape() == residual.shape() {
        let op = ResidualDropout {
            scale: mask.mask_scale(),
        };
        return x
            .contiguous()?
            .apply_op3(&mask.keep_for(x.shape())?, &residual.contiguous()?, op);
    }
    dropout(x, mask)?.to_dtype(residual.dtype())? + residual
}

/// `scale.apply(x, keep)` for every element, plus the `residual`'s when there is one, in
/// parallel chunks.
fn dropped(x: &[f32], keep: &[u8], scale: MaskScale, residual: Option<&[f32]>) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    y.par_chunks_mut(ELEMENTWISE_CHUNK)
        .zip(x.par_chunks(ELEMENTWISE_CHUNK))
        .zip(keep.par_chunks(ELEMENTWISE_CHUNK))
        .enumerate()
        .for_each(|(chunk, ((out, x), keep))| match residual {
            None => {
                for ((o, &v), &k) in out.iter_mut().zip(x).zip(keep) {
                    *o = scale.apply(v, k);
                }
            }
            Some(residual) => {
                let residual = &residual[chunk * ELEMENTWISE_CHUNK..][..out.len()];
                for (((o, &v), &k), &r) in out.iter_mut().zip(x).zip(keep).zip(residual) {
                    *o = scale.apply(v, k) + r;
                }
            }
        });
    y
}

/// The fused operation of [`dropout`]; as its own backward pass it scales the gradient by the
/// same mask.
struct Dropout {
    scale: MaskScale,
}

impl CustomOp2 for Dropout {
    fn name(&self) -> &'static str {
        "lrlab-dropout"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, keep) = (
            cpu_slice::<f32>(self.name(), xs, xl)?,
            cpu_slice::<u8>(self.name(), ks, kl)?,
        );
        let y = dropped(x, keep, self.scale, None);
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        keep: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let op = Dropout { scale: self.scale };
        Ok((Some(grad.contiguous()?.apply_op2_no_bwd(keep, &op)?), None))
    }
}

/// The fused operation of [`residual_dropout`]: (x, keep-mask, residual) → output. Its
/// gradient is the output's, scaled by the mask for `x`, as it is for the residual.
struct ResidualDropout {
    scale: MaskScale,
}

impl CustomOp3 for ResidualDropout {
    fn name(&self) -> &'static str {
        "lrlab-residual-dropout"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        rs: &CpuStorage,
        rl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, keep, residual) = (
            cpu_slice::<f32>(self.name(), xs, xl)?,
            cpu_slice::<u8>(self.name(), ks, kl)?,
            cpu_slice::<f32>(self.name(), rs, rl)?,
        );
        if keep.len() != x.len() || residual.len() != x.len() {
            candle_core::bail!("{}: operands of different sizes", self.name());
        }
        let y = dropped(x, keep, self.scale, Some(residual));
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        keep: &Tensor,
        _residual: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let op = Dropout { scale: self.scale };
        let dx = grad.apply_op2_no_bwd(keep, &op)?;
        Ok((Some(dx), None, Some(grad)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn fused_dropout_equals_the_composition_bit_for_bit() -> Result<()> {
        let device = Device::Cpu;
        let shape = (3, 20_000);
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, shape, &device)?)?;
        let keep = Tensor::rand(0f32, 1.0, shape, &device)?.ge(0.3)?;
        let r = Tensor::randn(0f32, 1.0, shape, &device)?;
        let p = 0.3;
        let ours = dropout(x.as_tensor(), &DropoutMask::new(keep.clone(), p)?)?;
        let theirs = x
            .as_tensor()
            .mul(&(keep.to_dtype(DType::F32)? * (1.0 / (1.0 - p)))?)?;
        assert_eq!(ours.to_vec2::<f32>()?, theirs.to_vec2::<f32>()?);
        let grad = |y: &Tensor| -> Result<Vec<Vec<f32>>> {
            let grads = (y * &r)?.sum_all()?.backward()?;
            grads.get(x.as_tensor()).expect("a gradient").to_vec2()
        };
        assert_eq!(grad(&ours)?, grad(&theirs)?);
        let narrow = DropoutMask::new(keep.narrow(1, 0, 10)?, p)?;
        let err = dropout(x.as_tensor(), &narrow).unwrap_err();
        assert!(err.to_string().contains("the input's shape"), "{err}");
        assert!(
            DropoutMask::new(x.as_tensor().clone(), p).is_err(),
            "an f32 mask"
        );
        Ok(())
    }

    #[test]
    fn residual_dropout_equals_dropout_then_sum_bit_for_bit() -> Result<()> {
        let device = Device::Cpu;
        let shape = (3, 20_000);
        let random = || Var::from_tensor(&Tensor::randn(0f32, 1.0, shape, &device)?);
        let (x, residual) = (random()?, random()?);
        let keep = Tensor::rand(0f32, 1.0, shape, &device)?.ge(0.1)?;
        let mask = DropoutMask::new(keep, 0.1)?;
        let r = Tensor::randn(0f32, 1.0, shape, &device)?;
        let (x_, residual_) = (x.as_tensor(), residual.as_tensor());
        let ours = residual_dropout(x_, Some(&mask), residual_)?;
        let dropped = x_.mul(&(mask.keep().to_dtype(DType::F32)? * mask.scale())?)?;
        let theirs = (dropped + residual_)?;
        assert_eq!(ours.to_vec2::<f32>()?, theirs.to_vec2::<f32>()?);
        let (g_ours, g_theirs) = (
            (&ours * &r)?.sum_all()?.backward()?,
            (&theirs * &r)?.sum_all()?.backward()?,
        );
        for var in [&x, &residual] {
            let gradient = |g: &candle_core::backprop::GradStore| {
                g.get(var).expect("a gradient").to_vec2::<f32>()
            };
            assert_eq!(gradient(&g_ours)?, gradient(&g_theirs)?);
        }
        let identity = residual_dropout(x_, None, residual_)?;
        assert_eq!(
            identity.to_vec2::<f32>()?,
            (x_ + residual_)?.to_vec2::<f32>()?
        );
        Ok(())
    }
}
