//! Self-attention's core, `dropout(softmax(Q Kᵀ · scale + bias)) V`, as one operation on the
//! CPU, reading and writing every head where the linear layers leave it: inside the
//! `(B, L, heads·d)` projections, a head being `d` columns of each row, which `gemm` reads and
//! writes in place through strides.
//!
//! candle's composition splits the heads out (a reshape, a transpose and a copy for each of
//! query, key and value), transposes the key, scales the scores, adds the padding mask, takes
//! the softmax, drops the probabilities out and merges the context back: each a graph node
//! with a pass forward and, since candle's backward pass starts every input gradient as zeros
//! and adds onto it, a zero-and-add backward, several of them over `(B, heads, L, L)` tensors.
//! Here one batch element is one task, and for each head the scores are a product into the
//! probabilities' square, turned into probabilities there while they are in cache, dropped
//! out into an `L × L` scratch matrix as they multiply the value; backward, each head's
//! gradients of the probabilities and of the scores are `L × L` scratch matrices. The only
//! `(B, heads, L, L)` array is the probabilities, which the operation keeps for its backward
//! pass.

use std::sync::OnceLock;

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

use super::dropout::{DropoutMask, MaskScale, dropout};
use super::product::{Destination, Matrix, matmul_into};
use super::softmax::{attention_softmax, attention_softmax_row, softmax_row_gradient};
use super::{cpu_slice, serves_f32, with_cpu_slices};

/// Self-attention's context `dropout(softmax(Q Kᵀ · scale + bias)) V`: `query`, `key` and
/// `value` are `(B, L, heads·d)`, and so is the context, its heads side by side as the output
/// projection reads them; `bias` (`(B, 1, 1, L)`, a constant: it gets no gradient) masks padded
/// keys, and `mask` is attention dropout's draw over the `(B, heads, L, L)` probabilities (none:
/// no dropout). Differentiable in the query, the key and the value. One fused operation for
/// `f32` on the CPU (see the module's documentation); elsewhere candle's products of the split
/// heads, the scores cast to `f32` for [`attention_softmax`], the probabilities dropped out in
/// `f32` and cast to the value's type. The same values to rounding either way.
pub fn attention(
    query: &Tensor,
    key: &Tensor,
    value: &Tensor,
    heads: usize,
    scale: f64,
    bias: &Tensor,
    mask: Option<&DropoutMask>,
) -> Result<Tensor> {
    if [query, key, value, bias].into_iter().all(serves_f32) {
        let scores = Heads::of(query.layout(), heads)?.scores_shape();
        let op = Attention {
            heads,
            scale: scale as f32,
            bias: bias.contiguous()?.detach(),
            dropout: match mask {
                Some(mask) => Some((mask.keep_for(&scores)?, mask.mask_scale())),
                None => None,
            },
            probabilities: OnceLock::new(),
        };
        return query
            .contiguous()?
            .apply_op3(&key.contiguous()?, &value.contiguous()?, op);
    }
    composed(query, key, value, heads, scale, bias, mask)
}

/// [`attention`] from candle's primitives, off the CPU or in `bf16`.
fn composed(
    query: &Tensor,
    key: &Tensor,
    value: &Tensor,
    heads: usize,
    scale: f64,
    bias: &Tensor,
    mask: Option<&DropoutMask>,
) -> Result<Tensor> {
    let scores = split_heads(query, heads)?.matmul(&split_heads(key, heads)?.t()?)?;
    let probabilities = attention_softmax(&scores.to_dtype(DType::F32)?, scale, bias)?;
    let probabilities = match mask {
        Some(mask) => dropout(&probabilities, mask)?,
        None => probabilities,
    };
    let (batch, len, width) = value.dims3()?;
    probabilities
        .to_dtype(value.dtype())?
        .matmul(&split_heads(value, heads)?)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((batch, len, width))
}

/// `(B, L, heads·d)` as `(B, heads, L, d)`, contiguous.
fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (batch, len, width) = x.dims3()?;
    x.reshape((batch, len, heads, width / heads))?
        .transpose(1, 2)?
        .contiguous()
}

/// The shape of one attention: `batch` elements of `len` tokens, `heads` heads of `size`
/// features each.
#[derive(Clone, Copy, Debug)]
struct Heads {
    batch: usize,
    len: usize,
    heads: usize,
    size: usize,
}

impl Heads {
    /// The shape of `(B, L, heads·d)` projections laid out as `projection`.
    fn of(projection: &Layout, heads: usize) -> Result<Self> {
        match *projection.dims() {
            [batch, len, width] if heads > 0 && width % heads == 0 => Ok(Heads {
                batch,
                len,
                heads,
                size: width / heads,
            }),
            ref dims => candle_core::bail!(
                "attention: projection {dims:?} is not (batch, length, {heads} heads × size)"
            ),
        }
    }

    /// Features per token of a projection, all heads.
    fn width(&self) -> usize {
        self.heads * self.size
    }

    /// Elements of one batch element's projection.
    fn projection(&self) -> usize {
        self.len * self.width()
    }

    /// Elements of one head's `L × L` scores.
    fn square_len(&self) -> usize {
        self.len * self.len
    }

    /// Elements of one batch element's scores (all heads).
    fn scores(&self) -> usize {
        self.heads * self.square_len()
    }

    /// `(B, heads, L, L)`.
    fn scores_shape(&self) -> Shape {
        Shape::from((self.batch, self.heads, self.len, self.len))
    }

    /// Head `h` of one batch element's projection `x`: `L × d`, inside `x`'s rows.
    fn head<'a>(&self, x: &'a [f32], h: usize) -> Matrix<'a> {
        Matrix::strided(&x[h * self.size..], self.len, self.size, self.width())
    }

    /// Where head `h` of one batch element's projection `x` is written.
    fn head_mut<'a>(&self, x: &'a mut [f32], h: usize) -> Destination<'a> {
        Destination::strided(&mut x[h * self.size..], self.width())
    }

    /// Head `h`'s `L × L` part of one batch element's scores `s`.
    fn square<'a>(&self, s: &'a [f32], h: usize) -> &'a [f32] {
        &s[h * self.square_len()..][..self.square_len()]
    }

    /// Head `h`'s `L × L` part of one batch element's scores `s`, to write.
    fn square_mut<'a>(&self, s: &'a mut [f32], h: usize) -> &'a mut [f32] {
        let n = self.square_len();
        &mut s[h * n..][..n]
    }

    /// `N` arrays of `sizes[i]` elements a batch element, each element's parts written by
    /// `fill(b, its parts)`, the elements in parallel.
    fn per_element<const N: usize>(
        &self,
        sizes: [usize; N],
        fill: impl Fn(usize, [&mut [f32]; N]) + Sync,
    ) -> [Vec<f32>; N] {
        let mut parts = sizes.map(|size| vec![0f32; self.batch * size]);
        let mut chunks = {
            let mut sizes = sizes.into_iter();
            parts
                .each_mut()
                .map(|part| part.chunks_mut(sizes.next().unwrap_or(1).max(1)))
        };
        let elements: Vec<[&mut [f32]; N]> = (0..self.batch)
            .map(|_| chunks.each_mut().map(|c| c.next().unwrap_or_default()))
            .collect();
        elements
            .into_par_iter()
            .enumerate()
            .for_each(|(b, parts)| fill(b, parts));
        parts
    }
}

/// Batch element `b`'s part of `x`, whose batch elements are `size` long.
fn element<T>(x: &[T], b: usize, size: usize) -> &[T] {
    &x[b * size..][..size]
}

/// One small product, on the calling task's thread.
fn product(dst: Destination, a: Matrix, b: Matrix) {
    matmul_into(dst, a, b, false, Parallelism::None);
}

/// Attention dropout inside the operation: the keep-mask of the `(B, heads, L, L)`
/// probabilities and its scale.
#[derive(Clone, Copy)]
struct HeadDropout<'a> {
    keep: &'a [u8],
    scale: MaskScale,
}

impl HeadDropout<'_> {
    /// The mask of head `h` of batch element `b`.
    fn keep(&self, g: &Heads, b: usize, h: usize) -> &[u8] {
        let n = g.square_len();
        &self.keep[(b * g.heads + h) * n..][..n]
    }

    /// `x` (head `h` of batch element `b`, `L × L`) dropped out into `out`.
    fn apply(&self, g: &Heads, b: usize, h: usize, x: &[f32], out: &mut [f32]) {
        for ((o, &v), &k) in out.iter_mut().zip(x).zip(self.keep(g, b, h)) {
            *o = self.scale.apply(v, k);
        }
    }

    /// `x` (head `h` of batch element `b`, `L × L`) dropped out in place.
    fn apply_in_place(&self, g: &Heads, b: usize, h: usize, x: &mut [f32]) {
        for (v, &k) in x.iter_mut().zip(self.keep(g, b, h)) {
            *v = self.scale.apply(*v, k);
        }
    }
}

/// The fused operation of [`attention`]: (query, key, value) → context. The bias and the
/// dropout's mask are constants and ride here; the probabilities are kept for the backward
/// pass.
struct Attention {
    heads: usize,
    scale: f32,
    bias: Tensor,
    dropout: Option<(Tensor, MaskScale)>,
    probabilities: OnceLock<Vec<f32>>,
}

/// The operands of one run of [`Attention`], as slices.
struct Operands<'a> {
    query: &'a [f32],
    key: &'a [f32],
    value: &'a [f32],
    bias: &'a [f32],
    dropout: Option<HeadDropout<'a>>,
}

impl<'a> Operands<'a> {
    /// Batch element `b`'s query, key and value.
    fn element(&self, g: &Heads, b: usize) -> [&'a [f32]; 3] {
        [self.query, self.key, self.value].map(|x| element(x, b, g.projection()))
    }

    /// Head `h`'s probabilities `square` (of batch element `b`) as they multiply the value:
    /// themselves, or dropped out into `scratch` when there is dropout.
    fn used<'s>(
        &self,
        g: &Heads,
        b: usize,
        h: usize,
        square: &'s [f32],
        scratch: &'s mut Vec<f32>,
    ) -> Matrix<'s> {
        let used = match self.dropout {
            Some(dropout) => {
                scratch.resize(square.len(), 0.0);
                dropout.apply(g, b, h, square, scratch);
                scratch
            }
            None => square,
        };
        Matrix::new(used, g.len, g.len)
    }
}

impl Attention {
    /// The heads' shape, checking the operands: query, key and value `(B, L, heads·d)`, the
    /// bias `(B, 1, 1, L)` (the mask was checked against the query when [`attention`] built
    /// the operation).
    fn heads(&self, query: &Layout, key: &Layout, value: &Layout) -> Result<Heads> {
        let g = Heads::of(query, self.heads)?;
        if key.dims() != query.dims()
            || value.dims() != query.dims()
            || self.bias.dims() != [g.batch, 1, 1, g.len]
        {
            candle_core::bail!(
                "attention: query {:?}, key {:?}, value {:?} and bias {:?} do not fit",
                query.dims(),
                key.dims(),
                value.dims(),
                self.bias.dims()
            );
        }
        Ok(g)
    }

    /// Runs `f` on the bias and the mask as slices.
    fn with_constants<R>(&self, f: impl FnOnce(&[f32], Option<HeadDropout>) -> R) -> Result<R> {
        with_cpu_slices(self.name(), [&self.bias], |[bias]| match &self.dropout {
            None => Ok(f(bias, None)),
            Some((keep, scale)) => with_cpu_slices(self.name(), [keep], |[keep]| {
                let scale = *scale;
                Ok(f(bias, Some(HeadDropout { keep, scale })))
            }),
        })
    }

    /// The context and the probabilities, one batch element per task.
    fn forward(&self, g: Heads, x: &Operands) -> [Vec<f32>; 2] {
        let (p, s) = (g.projection(), g.scores());
        g.per_element([p, s], |b, [context, probabilities]| {
            let [q, k, v] = x.element(&g, b);
            let bias = element(x.bias, b, g.len);
            let mut dropped = Vec::new();
            for h in 0..g.heads {
                let square = g.square_mut(probabilities, h);
                let scores = Destination::dense(square, g.len);
                product(scores, g.head(q, h), g.head(k, h).t());
                for row in g.square_mut(probabilities, h).chunks_mut(g.len) {
                    attention_softmax_row(row, self.scale, bias);
                }
                let used = x.used(&g, b, h, g.square(probabilities, h), &mut dropped);
                product(g.head_mut(context, h), used, g.head(v, h));
            }
        })
    }

    /// The gradients of the query, the key and the value from the context's, `dc`, and the
    /// kept probabilities `pr`, one batch element per task: per head, with `Pd` the dropped
    /// probabilities, `∂Pd = ∂C Vᵀ`, `∂V = Pdᵀ ∂C`, `∂P = ∂Pd ⊙ keep / (1 − p)`, `∂S` the
    /// softmax's gradient of `∂P`, `∂Q = ∂S K`, `∂K = ∂Sᵀ Q`.
    fn backward(&self, g: Heads, x: &Operands, pr: &[f32], dc: &[f32]) -> [Vec<f32>; 3] {
        let (p, s, n) = (g.projection(), g.scores(), g.square_len());
        g.per_element([p, p, p], |b, [dq, dk, dv]| {
            let [q, k, v] = x.element(&g, b);
            let (pr, dc) = (element(pr, b, s), element(dc, b, p));
            let (mut d_dropped, mut ds) = (vec![0f32; n], vec![0f32; n]);
            let mut dropped = Vec::new();
            for h in 0..g.heads {
                let square = g.square(pr, h);
                let d_square = Destination::dense(&mut d_dropped, g.len);
                product(d_square, g.head(dc, h), g.head(v, h).t());
                if let Some(dropout) = x.dropout {
                    dropout.apply_in_place(&g, b, h, &mut d_dropped);
                }
                let used = x.used(&g, b, h, square, &mut dropped);
                product(g.head_mut(dv, h), used.t(), g.head(dc, h));
                let rows = ds.chunks_mut(g.len).zip(square.chunks(g.len));
                for ((ds, pr), dp) in rows.zip(d_dropped.chunks(g.len)) {
                    softmax_row_gradient(pr, dp, self.scale, ds);
                }
                let ds = Matrix::new(&ds, g.len, g.len);
                product(g.head_mut(dq, h), ds, g.head(k, h));
                product(g.head_mut(dk, h), ds.t(), g.head(q, h));
            }
        })
    }
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "lrlab-attention"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = self.heads(ql, kl, vl)?;
        let (query, key, value) = (
            cpu_slice::<f32>(self.name(), qs, ql)?,
            cpu_slice::<f32>(self.name(), ks, kl)?,
            cpu_slice::<f32>(self.name(), vs, vl)?,
        );
        let [context, probabilities] = self.with_constants(|bias, dropout| {
            let operands = Operands {
                query,
                key,
                value,
                bias,
                dropout,
            };
            self.forward(g, &operands)
        })?;
        self.probabilities
            .set(probabilities)
            .map_err(|_| candle_core::Error::Msg(format!("{}: run twice", self.name())))?;
        Ok((CpuStorage::F32(context), ql.shape().clone()))
    }

    fn bwd(
        &self,
        query: &Tensor,
        key: &Tensor,
        value: &Tensor,
        _context: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = self.heads(query.layout(), key.layout(), value.layout())?;
        let pr = self
            .probabilities
            .get()
            .ok_or_else(|| candle_core::Error::Msg(format!("{}: no forward pass", self.name())))?;
        let grad = grad.contiguous()?;
        let [dq, dk, dv] = with_cpu_slices(
            self.name(),
            [query, key, value, &grad],
            |[query, key, value, dc]| {
                self.with_constants(|bias, dropout| {
                    let operands = Operands {
                        query,
                        key,
                        value,
                        bias,
                        dropout,
                    };
                    self.backward(g, &operands, pr, dc)
                })
            },
        )?;
        let (shape, device) = (query.shape(), grad.device());
        Ok((
            Some(Tensor::from_vec(dq, shape, device)?),
            Some(Tensor::from_vec(dk, shape, device)?),
            Some(Tensor::from_vec(dv, shape, device)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relative_error;
    use candle_core::{D, Device, Var};

    /// Attention from candle's primitives alone, the reference for the fused operation.
    fn reference(
        (q, k, v): (&Tensor, &Tensor, &Tensor),
        heads: usize,
        scale: f64,
        bias: &Tensor,
        mask: Option<&DropoutMask>,
    ) -> Result<Tensor> {
        let scores = split_heads(q, heads)?
            .matmul(&split_heads(k, heads)?.t()?)?
            .affine(scale, 0.0)?
            .broadcast_add(bias)?;
        let exp = scores
            .broadcast_sub(&scores.max_keepdim(D::Minus1)?.detach())?
            .exp()?;
        let mut probabilities = exp.broadcast_div(&exp.sum_keepdim(D::Minus1)?)?;
        if let Some(mask) = mask {
            let factor = (mask.keep().to_dtype(DType::F32)? * mask.scale())?;
            probabilities = (probabilities * factor)?;
        }
        let (batch, len, width) = v.dims3()?;
        probabilities
            .matmul(&split_heads(v, heads)?)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((batch, len, width))
    }

    /// The fused operation against candle's composition, in value and in the three gradients,
    /// with and without dropout, a value that arrives non-contiguous (a transpose), and padded
    /// keys; with an empty mask (p = 1) the context is zero.
    #[test]
    fn attention_equals_candles_composition_in_value_and_gradients() -> Result<()> {
        let device = Device::Cpu;
        let (batch, len, heads, size) = (3, 6, 2, 4);
        let random = |shape: &[usize]| Var::from_tensor(&Tensor::randn(0f32, 1.0, shape, &device)?);
        let (q, k, v) = (
            random(&[batch, len, heads * size])?,
            random(&[batch, len, heads * size])?,
            random(&[batch, heads * size, len])?,
        );
        let v_transposed = v.as_tensor().transpose(1, 2)?;
        // Item 1 has its last two keys padded, the others none.
        let mut bias = vec![0f32; batch * len];
        bias[2 * len - 2] = f32::MIN;
        bias[2 * len - 1] = f32::MIN;
        let bias = Tensor::from_vec(bias, (batch, 1, 1, len), &device)?;
        let keep = Tensor::rand(0f32, 1.0, (batch, heads, len, len), &device)?.ge(0.25)?;
        let masks = [None, Some(DropoutMask::new(keep.clone(), 0.25)?)];
        let r = Tensor::randn(0f32, 1.0, (batch, len, heads * size), &device)?;
        let operands = (q.as_tensor(), k.as_tensor(), &v_transposed);
        for mask in &masks {
            let (q_, k_, v_) = operands;
            let fused = attention(q_, k_, v_, heads, 0.5, &bias, mask.as_ref())?;
            let expected = reference(operands, heads, 0.5, &bias, mask.as_ref())?;
            assert_eq!(fused.dims(), [batch, len, heads * size]);
            assert!(relative_error(&fused, &expected) < 1e-6, "context");
            let gradients = |c: &Tensor| (c * &r)?.sum_all()?.backward();
            let (g_fused, g_expected) = (gradients(&fused)?, gradients(&expected)?);
            for (name, var) in [("q", &q), ("k", &k), ("v", &v)] {
                let (a, b) = (
                    g_fused.get(var).expect("fused gradient"),
                    g_expected.get(var).expect("composed gradient"),
                );
                // f32 rounding of two formulas with cancellation in ∂S = P ⊙ (∂P − Σ ∂P ⊙ P).
                let error = relative_error(a, b);
                assert!(error < 1e-5, "gradient of {name} differs by {error:e}");
            }
        }
        let (q_, k_, v_) = operands;
        let empty = DropoutMask::new(keep.zeros_like()?, 1.0)?;
        let dropped_all = attention(q_, k_, v_, heads, 0.5, &bias, Some(&empty))?;
        assert_eq!(dropped_all.abs()?.sum_all()?.to_scalar::<f32>()?, 0.0);
        Ok(())
    }

    #[test]
    fn mismatched_operands_are_an_error() -> Result<()> {
        let device = Device::Cpu;
        let zeros = |shape: &[usize]| Tensor::zeros(shape, DType::F32, &device);
        let (q, k) = (zeros(&[2, 3, 8])?, zeros(&[2, 4, 8])?);
        let bias = zeros(&[2, 1, 1, 3])?;
        assert!(attention(&q, &k, &q, 2, 1.0, &bias, None).is_err());
        assert!(attention(&q, &q, &k, 2, 1.0, &bias, None).is_err());
        assert!(
            attention(&q, &q, &q, 3, 1.0, &bias, None).is_err(),
            "8 features in 3 heads"
        );
        let long_bias = zeros(&[2, 1, 1, 4])?;
        assert!(attention(&q, &q, &q, 2, 1.0, &long_bias, None).is_err());
        let keep = Tensor::ones((2, 2, 4, 3), DType::U8, &device)?;
        let mask = DropoutMask::new(keep, 0.1)?;
        assert!(
            attention(&q, &q, &q, 2, 1.0, &bias, Some(&mask)).is_err(),
            "mask of another shape"
        );
        Ok(())
    }
}
