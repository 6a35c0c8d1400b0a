//! A linear layer `x Wᵀ + b` as one operation on the CPU: the bias is written into the output
//! and `gemm` adds the product onto it, and the backward pass computes the three gradients
//! from the output's. candle's composition (a reshape, a transpose, a product, a bias addition
//! and a reshape back) is five nodes, and candle's backward pass starts each node's input
//! gradient as a fresh zero tensor and adds onto it: four more zero-and-add passes over the
//! activations and a strided one over the weight for every linear layer of a step. The bias'
//! gradient sums the output gradient's columns in parallel, where candle's broadcast reduction
//! runs on one thread with two integer divisions per element.

use std::sync::OnceLock;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

use super::gelu::{gelu_erf, gelu_keeping_slopes, gradient_from_slopes};
use super::product::{Matrix, matmul};
use super::{cpu_slice, serves_f32, sum_in_order, with_cpu_slices};

/// `x Wᵀ + b` over the last dimension of `x`, `weight` being `(out, in)` and `bias` `(out,)`;
/// differentiable in all three. One fused operation for `f32` on the CPU with a bias, candle's
/// product (and broadcast addition) elsewhere; the same values either way.
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    match bias {
        Some(bias) if serves_f32(x) && serves_f32(weight) && serves_f32(bias) => {
            x.contiguous()?.apply_op3(
                &weight.contiguous()?,
                &bias.contiguous()?,
                Linear::default(),
            )
        }
        _ => composed(x, weight, bias),
    }
}

/// `gelu_erf(x Wᵀ + b)`, a transformer's feed-forward expansion, differentiable in all three.
/// One fused operation for `f32` on the CPU, which keeps GELU's slope at each output to itself
/// for its backward pass (computed with the value, so the backward pass is a product per
/// element, not an `erf` and an `exp`): the product's output never becomes a tensor, so
/// neither does its gradient, which candle's backward pass would start as zeros and add onto.
/// Elsewhere [`linear`] and then [`gelu_erf`]; the same values either way.
pub fn linear_gelu(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    if serves_f32(x) && serves_f32(weight) && serves_f32(bias) {
        let op = Linear {
            gelu: Some(OnceLock::new()),
        };
        return x
            .contiguous()?
            .apply_op3(&weight.contiguous()?, &bias.contiguous()?, op);
    }
    gelu_erf(&composed(x, weight, Some(bias))?)
}

/// [`linear`] from candle's primitives: one 2-d product over the rows of all leading
/// dimensions (no broadcast batch of the weight, which a GPU's batched product would need).
fn composed(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let mut dims = x.dims().to_vec();
    let features = dims.pop().unwrap_or(1);
    let rows = x.elem_count() / features.max(1);
    let product = x.reshape((rows, features))?.matmul(&weight.t()?)?;
    let product = match bias {
        Some(bias) => product.broadcast_add(bias)?,
        None => product,
    };
    dims.push(weight.dim(0)?);
    product.reshape(dims)
}

/// The fused operation of [`linear`] and, with `gelu`, of [`linear_gelu`]: then the
/// forward pass keeps GELU's slopes there (in the product's buffer) for the backward pass.
#[derive(Default)]
struct Linear {
    gelu: Option<OnceLock<Vec<f32>>>,
}

/// Rows per parallel task of the bias gradient's column sums.
const ROWS: usize = 64;

/// The shape of a linear layer's operands: `rows` inputs of `inputs` features each, `outputs`
/// output features.
#[derive(Clone, Copy)]
struct Sizes {
    rows: usize,
    inputs: usize,
    outputs: usize,
}

impl Sizes {
    /// The sizes of `x` (`(…, in)`), `weight` (`(out, in)`) and `bias` (`(out,)`) laid out as
    /// given, or an error saying which do not fit.
    fn of(x: &Layout, weight: &Layout, bias: &Layout) -> Result<Self> {
        let (&inputs, &[outputs, weight_inputs]) = (x.dims().last().unwrap_or(&0), weight.dims())
        else {
            candle_core::bail!("linear: weight {:?} is not a matrix", weight.dims());
        };
        if inputs == 0 || weight_inputs != inputs || bias.dims() != [outputs] {
            candle_core::bail!(
                "linear: input {:?}, weight {:?} and bias {:?} do not fit",
                x.dims(),
                weight.dims(),
                bias.dims()
            );
        }
        let rows = x.shape().elem_count() / inputs;
        Ok(Sizes {
            rows,
            inputs,
            outputs,
        })
    }

    /// The output's shape: `x`'s with its last dimension `outputs`.
    fn output(&self, x: &Layout) -> Shape {
        let mut dims = x.dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = self.outputs;
        }
        Shape::from(dims)
    }
}

/// How `gemm` runs a linear layer's products: over every thread.
fn parallelism() -> Parallelism {
    Parallelism::Rayon(rayon::current_num_threads())
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "lrlab-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let sizes = Sizes::of(xl, wl, bl)?;
        let (x, weight, bias) = (
            cpu_slice::<f32>(name, xs, xl)?,
            cpu_slice::<f32>(name, ws, wl)?,
            cpu_slice::<f32>(name, bs, bl)?,
        );
        let Sizes {
            rows,
            inputs,
            outputs,
        } = sizes;
        // Every row starts as the bias; the product is added onto it.
        let mut y = Vec::with_capacity(rows * outputs);
        for _ in 0..rows {
            y.extend_from_slice(bias);
        }
        let x = Matrix::new(x, rows, inputs);
        let weight = Matrix::new(weight, outputs, inputs);
        matmul(&mut y, x, weight.t(), true, parallelism());
        if let Some(slopes) = &self.gelu {
            let activated = gelu_keeping_slopes(&mut y);
            slopes
                .set(y)
                .map_err(|_| candle_core::Error::Msg(format!("{name}: run twice")))?;
            y = activated;
        }
        Ok((CpuStorage::F32(y), sizes.output(xl)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (xl, wl) = (x.layout(), weight.layout());
        let Sizes {
            rows,
            inputs,
            outputs,
        } = Sizes::of(xl, wl, bias.layout())?;
        let (dx, dw, db) = with_cpu_slices(self.name(), [x, weight, &grad], |[x, w, dy]| {
            let through_gelu = match &self.gelu {
                None => None,
                Some(slopes) => {
                    let slopes = slopes.get().ok_or_else(|| {
                        candle_core::Error::Msg(format!("{}: no forward pass", self.name()))
                    })?;
                    Some(gradient_from_slopes(slopes, dy))
                }
            };
            let dy = through_gelu.as_deref().unwrap_or(dy);
            let (x, w) = (
                Matrix::new(x, rows, inputs),
                Matrix::new(w, outputs, inputs),
            );
            let dy_matrix = Matrix::new(dy, rows, outputs);
            // ∂x = ∂y·W, ∂W = ∂yᵀ·x, ∂b = the columns' sums of ∂y.
            let mut dx = vec![0f32; rows * inputs];
            matmul(&mut dx, dy_matrix, w, false, parallelism());
            let mut dw = vec![0f32; outputs * inputs];
            matmul(&mut dw, dy_matrix.t(), x, false, parallelism());
            Ok((dx, dw, column_sums(dy, outputs)))
        })?;
        let device = grad.device();
        Ok((
            Some(Tensor::from_vec(dx, xl.shape(), device)?),
            Some(Tensor::from_vec(dw, wl.shape(), device)?),
            Some(Tensor::from_vec(db, outputs, device)?),
        ))
    }
}

/// The sums of the columns of the row-major `(rows, n)` matrix `dy`: each task sums a block of
/// rows, the blocks' sums are added last, in order.
fn column_sums(dy: &[f32], n: usize) -> Vec<f32> {
    let blocks = dy
        .par_chunks(n * ROWS)
        .map(|block| {
            let mut sums = vec![0f32; n];
            for row in block.chunks(n) {
                for (s, &g) in sums.iter_mut().zip(row) {
                    *s += g;
                }
            }
            sums
        })
        .collect();
    sum_in_order(blocks, n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relative_error;
    use candle_core::{Device, Var};

    #[test]
    fn fused_linear_equals_candles_in_value_and_gradients() -> Result<()> {
        let device = Device::Cpu;
        // 200 rows: more than one task of the column sums, the last one partial.
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (4, 50, 6), &device)?)?;
        let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (5, 6), &device)?)?;
        let b = Var::from_tensor(&Tensor::randn(0f32, 1.0, 5, &device)?)?;
        let r = Tensor::randn(0f32, 1.0, (4, 50, 5), &device)?;
        let ours = linear(x.as_tensor(), w.as_tensor(), Some(b.as_tensor()))?;
        let theirs = x
            .as_tensor()
            .broadcast_matmul(&w.as_tensor().t()?)?
            .broadcast_add(b.as_tensor())?;
        assert_eq!(ours.dims(), [4, 50, 5]);
        assert!(relative_error(&ours, &theirs) < 1e-6);
        let grads = |y: &Tensor| (y * &r)?.sum_all()?.backward();
        let (g_ours, g_theirs) = (grads(&ours)?, grads(&theirs)?);
        for (part, var) in [("x", &x), ("weight", &w), ("bias", &b)] {
            let (a, b) = (
                g_ours.get(var).expect("ours"),
                g_theirs.get(var).expect("theirs"),
            );
            let error = relative_error(a, b);
            assert!(error < 1e-5, "gradient of {part} differs by {error:e}");
        }
        let plain = linear(x.as_tensor(), w.as_tensor(), None)?;
        assert!(relative_error(&(plain.broadcast_add(b.as_tensor()))?, &theirs) < 1e-6);
        Ok(())
    }

    #[test]
    fn fused_linear_gelu_equals_linear_then_gelu() -> Result<()> {
        let device = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (3, 70, 6), &device)?)?;
        let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (9, 6), &device)?)?;
        let b = Var::from_tensor(&Tensor::randn(0f32, 1.0, 9, &device)?)?;
        let r = Tensor::randn(0f32, 1.0, (3, 70, 9), &device)?;
        let (x_, w_, b_) = (x.as_tensor(), w.as_tensor(), b.as_tensor());
        let ours = linear_gelu(x_, w_, b_)?;
        let two_ops = gelu_erf(&linear(x_, w_, Some(b_))?)?;
        assert_eq!(ours.dims(), [3, 70, 9]);
        assert_eq!(
            ours.flatten_all()?.to_vec1::<f32>()?,
            two_ops.flatten_all()?.to_vec1::<f32>()?
        );
        let grads = |y: &Tensor| (y * &r)?.sum_all()?.backward();
        let (g_ours, g_two) = (grads(&ours)?, grads(&two_ops)?);
        for var in [&x, &w, &b] {
            let gradient = |g: &candle_core::backprop::GradStore| {
                g.get(var)
                    .expect("a gradient")
                    .flatten_all()?
                    .to_vec1::<f32>()
            };
            assert_eq!(gradient(&g_ours)?, gradient(&g_two)?);
        }
        Ok(())
    }
}
