//! Self-attention's two batched products, reading and writing every head where the linear
//! layers leave it: inside the `(B, L, heads·d)` projections, a head being `d` columns of each
//! row. candle's composition splits the heads out (a reshape, a transpose and a copy for each of
//! query, key and value), transposes the key, and merges the context back (a transpose, a copy
//! and a reshape): ten graph nodes a layer, each costing a pass forward and, since candle's
//! backward pass starts every input gradient as zeros and adds onto it, a zero-and-add backward.
//! Here `gemm` reads and writes the heads in place through strides, one batch element per task,
//! and each product takes its neighbour along: the scores' softmax (with scale and padding
//! mask) rides in the first, the probabilities' dropout in the second, so that neither the
//! scores nor the dropped probabilities are ever a `(B, heads, L, L)` tensor.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

use super::dropout::{DropoutMask, MaskScale, dropout};
use super::product::{Destination, Matrix, matmul_into};
use super::softmax::{attention_softmax, attention_softmax_row, softmax_row_gradient};
use super::{cpu_slice, serves_f32, with_cpu_slices};

/// Every head's attention probabilities, the softmax over the keys of `Q Kᵀ · scale + bias`:
/// `query` and `key` are `(B, L, heads·d)`, `bias` (`(B, 1, 1, L)`, a constant: it gets no
/// gradient) masks padded keys, the probabilities are `(B, heads, L, L)` in `f32`;
/// differentiable in the query and the key. One fused operation for `f32` on the CPU: a head's
/// scores are a product into the probabilities' own square, turned into probabilities there
/// while they are in cache, and backward the scores' gradient is an `L × L` scratch matrix that
/// both products read, so neither the scores nor their gradient become a tensor (nor candle's
/// accumulation of it). Elsewhere candle's products of the split heads, the scores cast to
/// `f32`, and [`attention_softmax`].
pub fn attention_probabilities(
    query: &Tensor,
    key: &Tensor,
    heads: usize,
    scale: f64,
    bias: &Tensor,
) -> Result<Tensor> {
    if serves_f32(query) && serves_f32(key) && serves_f32(bias) {
        let op = Probabilities {
            heads,
            scale: scale as f32,
        };
        return query
            .contiguous()?
            .apply_op3(&key.contiguous()?, &bias.contiguous()?.detach(), op);
    }
    let scores = split_heads(query, heads)?.matmul(&split_heads(key, heads)?.t()?)?;
    attention_softmax(&scores.to_dtype(DType::F32)?, scale, bias)
}

/// Every head's context `P V`, or `dropout(P) V` with attention dropout's `mask`:
/// `probabilities` are `(B, heads, L, L)`, `value` is `(B, L, heads·d)`, and so is the context,
/// its heads side by side as the output projection reads them; differentiable in both. The
/// probabilities are dropped out in their own precision and then cast to the value's. One fused
/// operation for `f32` on the CPU, which drops a head's probabilities out into a scratch matrix
/// as it multiplies them (the dropped probabilities never become a tensor, nor their gradient);
/// candle's products of the split heads elsewhere.
pub fn attention_context(
    probabilities: &Tensor,
    value: &Tensor,
    heads: usize,
    mask: Option<&DropoutMask>,
) -> Result<Tensor> {
    if serves_f32(probabilities) && serves_f32(value) {
        let (probabilities, value) = (probabilities.contiguous()?, value.contiguous()?);
        return match mask {
            None => probabilities.apply_op2(&value, Context(heads)),
            Some(mask) => {
                let op = DroppedContext {
                    heads,
                    scale: mask.mask_scale(),
                };
                probabilities.apply_op3(&value, &mask.keep_for(&probabilities)?, op)
            }
        };
    }
    let probabilities = match mask {
        Some(mask) => dropout(probabilities, mask)?,
        None => probabilities.clone(),
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

    /// The shape of the context's operands, checked: probabilities `(B, heads, L, L)` and value
    /// `(B, L, heads·d)`.
    fn of_context(probabilities: &Layout, value: &Layout, heads: usize) -> Result<Self> {
        let g = Heads::of(value, heads)?;
        if probabilities.shape() != &g.scores_shape() {
            candle_core::bail!(
                "attention: probabilities {:?} do not fit value {:?}",
                probabilities.dims(),
                value.dims()
            );
        }
        Ok(g)
    }

    /// Features per token of a projection, all heads.
    fn width(&self) -> usize {
        self.heads * self.size
    }

    /// Elements of one batch element's projection.
    fn projection(&self) -> usize {
        self.len * self.width()
    }

    /// Elements of one batch element's scores (all heads).
    fn scores(&self) -> usize {
        self.heads * self.len * self.len
    }

    /// Head `h` of one batch element's projection `x`: `L × d`, inside `x`'s rows.
    fn head<'a>(&self, x: &'a [f32], h: usize) -> Matrix<'a> {
        Matrix::strided(&x[h * self.size..], self.len, self.size, self.width())
    }

    /// Where head `h` of one batch element's projection `x` is written.
    fn head_mut<'a>(&self, x: &'a mut [f32], h: usize) -> Destination<'a> {
        Destination::strided(&mut x[h * self.size..], self.width())
    }

    /// Head `h`'s `L × L` matrix of one batch element's scores `s`.
    fn square<'a>(&self, s: &'a [f32], h: usize) -> Matrix<'a> {
        let n = self.len * self.len;
        Matrix::new(&s[h * n..][..n], self.len, self.len)
    }

    /// Where head `h`'s `L × L` matrix of one batch element's scores `s` is written.
    fn square_mut<'a>(&self, s: &'a mut [f32], h: usize) -> Destination<'a> {
        let n = self.len * self.len;
        Destination::dense(&mut s[h * n..][..n], self.len)
    }

    /// `(B, heads, L, L)`.
    fn scores_shape(&self) -> Shape {
        Shape::from((self.batch, self.heads, self.len, self.len))
    }

    /// Head `h`'s `L × L` probabilities of batch element `b` (`pr`: all of its heads' scores),
    /// dropped out into `scratch` when there is a `dropout`.
    fn probabilities<'a>(
        &self,
        pr: &'a [f32],
        b: usize,
        h: usize,
        dropout: Option<HeadDropout>,
        scratch: &'a mut Vec<f32>,
    ) -> Matrix<'a> {
        let Some(dropout) = dropout else {
            return self.square(pr, h);
        };
        let n = self.len * self.len;
        scratch.resize(n, 0.0);
        let keep = dropout.keep(self, b, h);
        for ((dropped, &p), &k) in scratch.iter_mut().zip(&pr[h * n..][..n]).zip(keep) {
            *dropped = dropout.scale.apply(p, k);
        }
        Matrix::new(scratch, self.len, self.len)
    }

    /// The context `C = dropout(P) V`, one batch element per task.
    fn context(&self, pr: &[f32], v: &[f32], dropout: Option<HeadDropout>) -> Vec<f32> {
        let (p, s) = (self.projection(), self.scores());
        self.per_element(p, |b, out| {
            let (pr, v) = (element(pr, b, s), element(v, b, p));
            let mut scratch = Vec::new();
            for h in 0..self.heads {
                let dropped = self.probabilities(pr, b, h, dropout, &mut scratch);
                product(self.head_mut(out, h), dropped, self.head(v, h));
            }
        })
    }

    /// The context's gradients `(∂P, ∂V)` for `C = dropout(P) V` and its gradient `dc`:
    /// `∂P = (∂C Vᵀ) ⊙ keep / (1 − p)`, `∂V = dropout(P)ᵀ ∂C`.
    fn context_gradients(
        &self,
        pr: &[f32],
        v: &[f32],
        dc: &[f32],
        dropout: Option<HeadDropout>,
    ) -> (Vec<f32>, Vec<f32>) {
        let (p, s, n) = (self.projection(), self.scores(), self.len * self.len);
        let d_probabilities = self.per_element(s, |b, dp| {
            let (v, dc) = (element(v, b, p), element(dc, b, p));
            for h in 0..self.heads {
                product(
                    self.square_mut(dp, h),
                    self.head(dc, h),
                    self.head(v, h).t(),
                );
                if let Some(dropout) = dropout {
                    let keep = dropout.keep(self, b, h);
                    for (d, &k) in dp[h * n..][..n].iter_mut().zip(keep) {
                        *d = dropout.scale.apply(*d, k);
                    }
                }
            }
        });
        let d_value = self.per_element(p, |b, dv| {
            let (pr, dc) = (element(pr, b, s), element(dc, b, p));
            let mut scratch = Vec::new();
            for h in 0..self.heads {
                let dropped = self.probabilities(pr, b, h, dropout, &mut scratch);
                product(self.head_mut(dv, h), dropped.t(), self.head(dc, h));
            }
        });
        (d_probabilities, d_value)
    }

    /// A tensor of `size` elements a batch element, each element's written by
    /// `fill(b, its elements)`, the elements in parallel.
    fn per_element(&self, size: usize, fill: impl Fn(usize, &mut [f32]) + Sync) -> Vec<f32> {
        let mut out = vec![0f32; self.batch * size];
        out.par_chunks_mut(size.max(1))
            .enumerate()
            .for_each(|(b, chunk)| fill(b, chunk));
        out
    }

    /// Two tensors of `size` elements a batch element, each element's pair written by
    /// `fill(b, its elements of the first, of the second)`, the elements in parallel.
    fn per_element_pair(
        &self,
        size: usize,
        fill: impl Fn(usize, &mut [f32], &mut [f32]) + Sync,
    ) -> (Vec<f32>, Vec<f32>) {
        let (mut first, mut second) =
            (vec![0f32; self.batch * size], vec![0f32; self.batch * size]);
        first
            .par_chunks_mut(size.max(1))
            .zip(second.par_chunks_mut(size.max(1)))
            .enumerate()
            .for_each(|(b, (first, second))| fill(b, first, second));
        (first, second)
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

/// Attention dropout inside the context product: the keep-mask of the `(B, heads, L, L)`
/// probabilities and its scale.
#[derive(Clone, Copy)]
struct HeadDropout<'a> {
    keep: &'a [u8],
    scale: MaskScale,
}

impl HeadDropout<'_> {
    /// The mask of head `h` of batch element `b`.
    fn keep(&self, g: &Heads, b: usize, h: usize) -> &[u8] {
        let n = g.len * g.len;
        &self.keep[(b * g.heads + h) * n..][..n]
    }
}

/// [`attention_context`] with attention dropout: (probabilities, value, keep-mask) → context.
struct DroppedContext {
    heads: usize,
    scale: MaskScale,
}

impl DroppedContext {
    /// The heads' shape, checking the operands as [`Heads::of_context`] does and the mask
    /// against the probabilities.
    fn heads(&self, probabilities: &Layout, value: &Layout, keep: &Layout) -> Result<Heads> {
        if keep.shape() != probabilities.shape() {
            candle_core::bail!(
                "attention: keep-mask {:?} does not fit the probabilities {:?}",
                keep.dims(),
                probabilities.dims()
            );
        }
        Heads::of_context(probabilities, value, self.heads)
    }
}

impl CustomOp3 for DroppedContext {
    fn name(&self) -> &'static str {
        "lrlab-attention-dropped-context"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = self.heads(l1, l2, l3)?;
        let dropout = HeadDropout {
            keep: cpu_slice::<u8>(self.name(), s3, l3)?,
            scale: self.scale,
        };
        let (probabilities, value) = (
            cpu_slice::<f32>(self.name(), s1, l1)?,
            cpu_slice::<f32>(self.name(), s2, l2)?,
        );
        let context = g.context(probabilities, value, Some(dropout));
        Ok((CpuStorage::F32(context), l2.shape().clone()))
    }

    fn bwd(
        &self,
        probabilities: &Tensor,
        value: &Tensor,
        keep: &Tensor,
        _out: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = self.heads(probabilities.layout(), value.layout(), keep.layout())?;
        let grad = grad.contiguous()?;
        let (d_probabilities, d_value) = with_cpu_slices(self.name(), [keep], |[keep]| {
            let dropout = HeadDropout {
                keep,
                scale: self.scale,
            };
            with_cpu_slices(self.name(), [probabilities, value, &grad], |[pr, v, dc]| {
                Ok(g.context_gradients(pr, v, dc, Some(dropout)))
            })
        })?;
        let device = grad.device();
        Ok((
            Some(Tensor::from_vec(
                d_probabilities,
                probabilities.shape(),
                device,
            )?),
            Some(Tensor::from_vec(d_value, value.shape(), device)?),
            None,
        ))
    }
}

/// The fused operation of [`attention_probabilities`]: (query, key, bias) → probabilities.
struct Probabilities {
    heads: usize,
    scale: f32,
}

impl Probabilities {
    /// The heads' shape, checking the operands: query and key `(B, L, heads·d)`, the bias
    /// `(B, 1, 1, L)`.
    fn heads(&self, query: &Layout, key: &Layout, bias: &Layout) -> Result<Heads> {
        let g = Heads::of(query, self.heads)?;
        if key.dims() != query.dims() || bias.dims() != [g.batch, 1, 1, g.len] {
            candle_core::bail!(
                "attention: query {:?}, key {:?} and bias {:?} do not fit",
                query.dims(),
                key.dims(),
                bias.dims()
            );
        }
        Ok(g)
    }
}

impl CustomOp3 for Probabilities {
    fn name(&self) -> &'static str {
        "lrlab-attention-probabilities"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = self.heads(ql, kl, bl)?;
        let (query, key, bias) = (
            cpu_slice::<f32>(self.name(), qs, ql)?,
            cpu_slice::<f32>(self.name(), ks, kl)?,
            cpu_slice::<f32>(self.name(), bs, bl)?,
        );
        let (p, s, n) = (g.projection(), g.scores(), g.len * g.len);
        let probabilities = g.per_element(s, |b, out| {
            let (q, k, bias) = (
                element(query, b, p),
                element(key, b, p),
                element(bias, b, g.len),
            );
            for h in 0..g.heads {
                product(g.square_mut(out, h), g.head(q, h), g.head(k, h).t());
                for row in out[h * n..][..n].chunks_mut(g.len) {
                    attention_softmax_row(row, self.scale, bias);
                }
            }
        });
        Ok((CpuStorage::F32(probabilities), g.scores_shape()))
    }

    fn bwd(
        &self,
        query: &Tensor,
        key: &Tensor,
        bias: &Tensor,
        probabilities: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = self.heads(query.layout(), key.layout(), bias.layout())?;
        let grad = grad.contiguous()?;
        let (p, s, n) = (g.projection(), g.scores(), g.len * g.len);
        let (d_query, d_key) = with_cpu_slices(
            self.name(),
            [query, key, probabilities, &grad],
            |[q, k, pr, dp]| {
                // ∂S = scale · P ⊙ (∂P − Σ ∂P ⊙ P) a row, then S = Q Kᵀ: ∂Q = ∂S K, ∂K = ∂Sᵀ Q.
                Ok(g.per_element_pair(p, |b, dq, dk| {
                    let (q, k) = (element(q, b, p), element(k, b, p));
                    let (pr, dp) = (element(pr, b, s), element(dp, b, s));
                    let mut ds = vec![0f32; n];
                    for h in 0..g.heads {
                        let rows = ds.chunks_mut(g.len);
                        let (pr, dp) = (&pr[h * n..][..n], &dp[h * n..][..n]);
                        for ((ds, pr), dp) in rows.zip(pr.chunks(g.len)).zip(dp.chunks(g.len)) {
                            softmax_row_gradient(pr, dp, self.scale, ds);
                        }
                        let ds = Matrix::new(&ds, g.len, g.len);
                        product(g.head_mut(dq, h), ds, g.head(k, h));
                        product(g.head_mut(dk, h), ds.t(), g.head(q, h));
                    }
                }))
            },
        )?;
        let device = grad.device();
        Ok((
            Some(Tensor::from_vec(d_query, query.shape(), device)?),
            Some(Tensor::from_vec(d_key, key.shape(), device)?),
            None,
        ))
    }
}

/// [`attention_context`] without dropout: (probabilities, value) → context.
struct Context(usize);

impl CustomOp2 for Context {
    fn name(&self) -> &'static str {
        "lrlab-attention-context"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Heads::of_context(l1, l2, self.0)?;
        let (probabilities, value) = (
            cpu_slice::<f32>(self.name(), s1, l1)?,
            cpu_slice::<f32>(self.name(), s2, l2)?,
        );
        let context = g.context(probabilities, value, None);
        Ok((CpuStorage::F32(context), l2.shape().clone()))
    }

    fn bwd(
        &self,
        probabilities: &Tensor,
        value: &Tensor,
        _out: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = Heads::of_context(probabilities.layout(), value.layout(), self.0)?;
        let grad = grad.contiguous()?;
        let (d_probabilities, d_value) =
            with_cpu_slices(self.name(), [probabilities, value, &grad], |[pr, v, dc]| {
                Ok(g.context_gradients(pr, v, dc, None))
            })?;
        let device = grad.device();
        Ok((
            Some(Tensor::from_vec(
                d_probabilities,
                probabilities.shape(),
                device,
            )?),
            Some(Tensor::from_vec(d_value, value.shape(), device)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relative_error;
    use candle_core::{D, Device, Var};

    /// Both operations against candle's composition, in value and in every gradient, with
    /// operands that arrive non-contiguous (a transpose) as well as plain, and padded keys.
    #[test]
    fn attention_operations_equal_candles_in_value_and_gradients() -> Result<()> {
        let device = Device::Cpu;
        let (batch, len, heads, size) = (3, 5, 2, 4);
        let random = |shape: &[usize]| Var::from_tensor(&Tensor::randn(0f32, 1.0, shape, &device)?);
        let (q, k, v) = (
            random(&[batch, len, heads * size])?,
            random(&[batch, len, heads * size])?,
            random(&[batch, heads * size, len])?,
        );
        let v_transposed = v.as_tensor().transpose(1, 2)?;
        let probabilities = random(&[batch, heads, len, len])?;
        // Item 1 has its last two keys padded, the others none.
        let mut bias = vec![0f32; batch * len];
        bias[len + 3] = f32::MIN;
        bias[len + 4] = f32::MIN;
        let bias = Tensor::from_vec(bias, (batch, 1, 1, len), &device)?;
        let scale = 0.5;
        let r_probabilities = Tensor::randn(0f32, 1.0, (batch, heads, len, len), &device)?;
        let r_context = Tensor::randn(0f32, 1.0, (batch, len, heads * size), &device)?;
        let fused = (
            attention_probabilities(q.as_tensor(), k.as_tensor(), heads, scale, &bias)?,
            attention_context(probabilities.as_tensor(), &v_transposed, heads, None)?,
        );
        let scores = split_heads(q.as_tensor(), heads)?
            .matmul(&split_heads(k.as_tensor(), heads)?.t()?)?
            .affine(scale, 0.0)?
            .broadcast_add(&bias)?;
        let shifted = scores.broadcast_sub(&scores.max_keepdim(D::Minus1)?.detach())?;
        let exp = shifted.exp()?;
        let composed = (
            exp.broadcast_div(&exp.sum_keepdim(D::Minus1)?)?,
            probabilities
                .as_tensor()
                .matmul(&split_heads(&v_transposed, heads)?)?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((batch, len, heads * size))?,
        );
        assert_eq!(fused.0.dims(), [batch, heads, len, len]);
        assert_eq!(fused.1.dims(), [batch, len, heads * size]);
        assert!(
            relative_error(&fused.0, &composed.0) < 1e-6,
            "probabilities"
        );
        assert!(relative_error(&fused.1, &composed.1) < 1e-6, "context");
        let padded = fused.0.narrow(0, 1, 1)?.narrow(3, 3, 2)?;
        assert_eq!(padded.abs()?.max_all()?.to_scalar::<f32>()?, 0.0);
        let loss = |(probabilities, context): &(Tensor, Tensor)| {
            (probabilities * &r_probabilities)?.sum_all()? + (context * &r_context)?.sum_all()?
        };
        let (g_fused, g_composed) = (loss(&fused)?.backward()?, loss(&composed)?.backward()?);
        for (name, var) in [("q", &q), ("k", &k), ("v", &v), ("p", &probabilities)] {
            let (a, b) = (
                g_fused.get(var).expect("fused gradient"),
                g_composed.get(var).expect("composed gradient"),
            );
            // f32 rounding of two formulas with cancellation in ∂S = P ⊙ (∂P − Σ ∂P ⊙ P).
            let error = relative_error(a, b);
            assert!(error < 1e-5, "gradient of {name} differs by {error:e}");
        }
        Ok(())
    }

    /// The context with attention dropout inside it equals the dropout and the product as two
    /// operations bit for bit, in value and both gradients, and candle's composition to
    /// rounding; with an empty mask (p = 1) it is zero.
    #[test]
    fn dropped_context_equals_dropout_then_product() -> Result<()> {
        let device = Device::Cpu;
        let (batch, len, heads, size) = (2, 6, 3, 4);
        let random = |shape: &[usize]| Var::from_tensor(&Tensor::randn(0f32, 1.0, shape, &device)?);
        let (probabilities, v) = (
            random(&[batch, heads, len, len])?,
            random(&[batch, len, heads * size])?,
        );
        let keep = Tensor::rand(0f32, 1.0, (batch, heads, len, len), &device)?.ge(0.25)?;
        let mask = DropoutMask::new(keep.clone(), 0.25)?;
        let r = Tensor::randn(0f32, 1.0, (batch, len, heads * size), &device)?;
        let (p, v_) = (probabilities.as_tensor(), v.as_tensor());
        let fused = attention_context(p, v_, heads, Some(&mask))?;
        let two_ops = attention_context(&dropout(p, &mask)?, v_, heads, None)?;
        let composed = (p * (keep.to_dtype(candle_core::DType::F32)? / 0.75)?)?
            .matmul(&split_heads(v_, heads)?)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((batch, len, heads * size))?;
        assert_eq!(fused.to_vec3::<f32>()?, two_ops.to_vec3::<f32>()?);
        assert!(relative_error(&fused, &composed) < 1e-6, "context");
        let gradients = |c: &Tensor| (c * &r)?.sum_all()?.backward();
        let (g_fused, g_two, g_composed) = (
            gradients(&fused)?,
            gradients(&two_ops)?,
            gradients(&composed)?,
        );
        for (name, var) in [("p", &probabilities), ("v", &v)] {
            let ours = g_fused.get(var).expect("fused gradient");
            let two = g_two.get(var).expect("two-op gradient");
            assert_eq!(
                ours.flatten_all()?.to_vec1::<f32>()?,
                two.flatten_all()?.to_vec1::<f32>()?
            );
            let error = relative_error(ours, g_composed.get(var).expect("composed gradient"));
            assert!(error < 1e-6, "gradient of {name} differs by {error:e}");
        }
        let empty = DropoutMask::new(keep.zeros_like()?, 1.0)?;
        let dropped_all = attention_context(p, v_, heads, Some(&empty))?;
        assert_eq!(dropped_all.abs()?.sum_all()?.to_scalar::<f32>()?, 0.0);
        Ok(())
    }

    #[test]
    fn mismatched_operands_are_an_error() -> Result<()> {
        let device = Device::Cpu;
        let q = Tensor::zeros((2, 3, 8), candle_core::DType::F32, &device)?;
        let k = Tensor::zeros((2, 4, 8), candle_core::DType::F32, &device)?;
        let bias = Tensor::zeros((2, 1, 1, 3), candle_core::DType::F32, &device)?;
        assert!(attention_probabilities(&q, &k, 2, 1.0, &bias).is_err());
        assert!(
            attention_probabilities(&q, &q, 3, 1.0, &bias).is_err(),
            "8 features in 3 heads"
        );
        let long_bias = Tensor::zeros((2, 1, 1, 4), candle_core::DType::F32, &device)?;
        assert!(attention_probabilities(&q, &q, 2, 1.0, &long_bias).is_err());
        let p = Tensor::zeros((2, 2, 3, 4), candle_core::DType::F32, &device)?;
        assert!(attention_context(&p, &q, 2, None).is_err());
        let q = Tensor::zeros((2, 4, 8), candle_core::DType::F32, &device)?;
        let keep = DropoutMask::new(
            Tensor::ones((2, 2, 4, 3), candle_core::DType::U8, &device)?,
            0.1,
        )?;
        let p = Tensor::zeros((2, 2, 4, 4), candle_core::DType::F32, &device)?;
        assert!(
            attention_context(&p, &q, 2, Some(&keep)).is_err(),
            "mask of another shape"
        );
        Ok(())
    }
}
