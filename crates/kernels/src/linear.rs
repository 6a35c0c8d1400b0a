//! A linear layer's product and bias. The product is candle's, over the rows of all leading
//! dimensions at once; the bias is one operation whose backward pass sums the gradient's
//! columns in parallel, where candle's broadcast gradient reduces over the leading dimensions one
//! element at a time, with two integer divisions per element, on one thread (for MiniLM's 36
//! biases a step, tenths of a second).

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{cpu_slice, serves_f32, sum_in_order};

/// `x Wᵀ + b` over the last dimension of `x`, `weight` being `(out, in)` and `bias` `(out,)`;
/// differentiable in all three. The bias is added by one fused operation for `f32` on the CPU,
/// by candle's broadcast addition elsewhere (the same values either way).
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let dims = x.dims();
    let features = *dims.last().unwrap_or(&0);
    let rows = x.elem_count() / features.max(1);
    let product = x.reshape((rows, features))?.matmul(&weight.t()?)?;
    let product = match bias {
        Some(bias) if serves_f32(&product) => product.apply_op2(bias, BiasAdd)?,
        Some(bias) => product.broadcast_add(bias)?,
        None => product,
    };
    let mut shape = dims.to_vec();
    if let Some(last) = shape.last_mut() {
        *last = weight.dim(0)?;
    }
    product.reshape(shape)
}

/// The fused operation of [`linear`]'s bias: `(rows, n) + (n,)`.
struct BiasAdd;

/// Rows per parallel task of the bias gradient's column sums.
const ROWS: usize = 64;

impl CustomOp2 for BiasAdd {
    fn name(&self) -> &'static str {
        "lrlab-bias-add"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, bias) = (
            cpu_slice::<f32>(self.name(), xs, xl)?,
            cpu_slice::<f32>(self.name(), bs, bl)?,
        );
        let n = bias.len();
        if n == 0 || xl.dims().last() != Some(&n) {
            candle_core::bail!("bias add: input {:?}, bias {n}", xl.dims());
        }
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(n * ROWS)
            .zip(x.par_chunks(n * ROWS))
            .for_each(|(out, x)| {
                for (out, x) in out.chunks_mut(n).zip(x.chunks(n)) {
                    for ((o, &v), &b) in out.iter_mut().zip(x).zip(bias) {
                        *o = v + b;
                    }
                }
            });
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        bias: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let n = bias.elem_count();
        let sums = {
            let (storage, layout) = grad.storage_and_layout();
            let candle_core::Storage::Cpu(storage) = &*storage else {
                candle_core::bail!("bias add backward: CPU tensors only");
            };
            column_sums(cpu_slice::<f32>(self.name(), storage, layout)?, n)
        };
        let dbias = Tensor::from_vec(sums, n, grad.device())?;
        Ok((Some(grad), Some(dbias)))
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
}
