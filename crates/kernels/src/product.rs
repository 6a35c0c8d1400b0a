//! The matrix product every kernel multiplies with: `gemm`'s, on views of slices. Its call is
//! lrlab's one `unsafe` block.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

use super::{cpu_slice, serves_f32};

/// A row-major view of a matrix in a slice, possibly transposed.
#[derive(Clone, Copy)]
pub(crate) struct Matrix<'a> {
    data: &'a [f32],
    rows: usize,
    columns: usize,
    row_stride: usize,
    column_stride: usize,
}

impl<'a> Matrix<'a> {
    /// The `rows × columns` matrix stored row by row at the start of `data`.
    pub(crate) fn new(data: &'a [f32], rows: usize, columns: usize) -> Self {
        assert!(data.len() >= rows * columns, "matrix larger than its slice");
        Matrix {
            data,
            rows,
            columns,
            row_stride: columns,
            column_stride: 1,
        }
    }

    /// The transpose, sharing the elements.
    pub(crate) fn t(self) -> Self {
        Matrix {
            rows: self.columns,
            columns: self.rows,
            row_stride: self.column_stride,
            column_stride: self.row_stride,
            ..self
        }
    }
}

/// `dst (m, n) = a (m, k) · b (k, n)`, or `dst += a · b` when `accumulate`, `dst` row-major.
#[allow(unsafe_code)] // gemm's entry point takes pointers and strides.
pub(crate) fn matmul(
    dst: &mut [f32],
    a: Matrix,
    b: Matrix,
    accumulate: bool,
    parallelism: Parallelism,
) {
    let (m, k, n) = (a.rows, a.columns, b.columns);
    assert!(
        b.rows == k && dst.len() >= m * n,
        "matmul: shapes do not match"
    );
    // SAFETY: the views and `dst` hold every element the strides reach (checked by
    // `Matrix::new` and above; a transpose reaches the same elements), and `dst` is exclusive.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.column_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.column_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// `a · b` over the last two dimensions of `f32` tensors with the same leading (batch)
/// dimensions, differentiable in both: on the CPU one product per batch element, the elements
/// in parallel (candle's CPU product runs them one after the other, each split over the
/// threads: attention's 128×128×32 products ran at 54–79 GFLOP/s against 280 for a linear
/// layer's); an operand that is the transpose of a contiguous tensor (`k.t()`) is read in place.
/// Elsewhere, or for other operands, candle's `matmul`.
pub fn batched_matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (ra, rb) = (a.rank(), b.rank());
    let fused = serves_f32(a)
        && serves_f32(b)
        && ra >= 3
        && ra == rb
        && a.dims()[..ra - 2] == b.dims()[..rb - 2]
        && a.dim(ra - 1)? == b.dim(rb - 2)?;
    if !fused {
        return a.matmul(b);
    }
    let ((a, transpose_a), (b, transpose_b)) = (base(a)?, base(b)?);
    a.apply_op2(
        &b,
        BatchedProduct {
            transpose_a,
            transpose_b,
        },
    )
}

/// A contiguous tensor holding `t`'s elements, and whether `t` is its transpose.
fn base(t: &Tensor) -> Result<(Tensor, bool)> {
    if t.is_contiguous() {
        return Ok((t.clone(), false));
    }
    let transposed = t.t()?;
    match transposed.is_contiguous() {
        true => Ok((transposed, true)),
        false => Ok((t.contiguous()?, false)),
    }
}

/// `op(a) · op(b)` per batch element, `op` transposing where asked, over contiguous operands.
struct BatchedProduct {
    transpose_a: bool,
    transpose_b: bool,
}

impl BatchedProduct {
    /// The matrices of batch element `i` of operand `data` whose matrices are `rows × columns`
    /// as stored, transposed when `transpose`.
    fn view(
        data: &[f32],
        (rows, columns): (usize, usize),
        i: usize,
        transpose: bool,
    ) -> Matrix<'_> {
        let m = Matrix::new(&data[i * rows * columns..][..rows * columns], rows, columns);
        if transpose { m.t() } else { m }
    }
}

impl CustomOp2 for BatchedProduct {
    fn name(&self) -> &'static str {
        "lrlab-batched-matmul"
    }

    fn cpu_fwd(
        &self,
        a_s: &CpuStorage,
        al: &Layout,
        b_s: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (a, b) = (
            cpu_slice::<f32>(self.name(), a_s, al)?,
            cpu_slice::<f32>(self.name(), b_s, bl)?,
        );
        let stored = |l: &Layout| {
            let d = l.dims();
            (d[d.len() - 2], d[d.len() - 1])
        };
        let (sa, sb) = (stored(al), stored(bl));
        let (m, k) = if self.transpose_a { (sa.1, sa.0) } else { sa };
        let (kb, n) = if self.transpose_b { (sb.1, sb.0) } else { sb };
        let batch = a.len() / (m * k).max(1);
        if kb != k || b.len() != batch * k * n {
            candle_core::bail!(
                "batched matmul: operands {:?} and {:?} do not multiply",
                al.dims(),
                bl.dims()
            );
        }
        let mut c = vec![0f32; batch * m * n];
        c.par_chunks_mut((m * n).max(1))
            .enumerate()
            .for_each(|(i, dst)| {
                let a = Self::view(a, sa, i, self.transpose_a);
                let b = Self::view(b, sb, i, self.transpose_b);
                matmul(dst, a, b, false, Parallelism::None);
            });
        let mut shape = al.dims()[..al.dims().len() - 2].to_vec();
        shape.extend([m, n]);
        Ok((CpuStorage::F32(c), Shape::from(shape)))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _c: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dc = grad.contiguous()?;
        let product = |x: &Tensor, transpose_a, y: &Tensor, transpose_b| {
            let op = BatchedProduct {
                transpose_a,
                transpose_b,
            };
            x.apply_op2_no_bwd(y, &op)
        };
        let (ta, tb) = (self.transpose_a, self.transpose_b);
        // With A = op(a) and B = op(b): ∂A = ∂C·Bᵀ and ∂B = Aᵀ·∂C, transposed back where the
        // operand was.
        let da = match ta {
            false => product(&dc, false, b, !tb)?,
            true => product(b, tb, &dc, true)?,
        };
        let db = match tb {
            false => product(a, !ta, &dc, false)?,
            true => product(&dc, true, a, ta)?,
        };
        Ok((Some(da), Some(db)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relative_error;
    use candle_core::{Device, Var};

    #[test]
    fn batched_products_equal_candles_in_value_and_gradients() -> Result<()> {
        let device = Device::Cpu;
        let a = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 3, 5, 4), &device)?)?;
        let b = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 3, 4, 6), &device)?)?;
        // Each operand as stored, and as the transpose of a contiguous tensor (`k.t()`).
        let b_as_t = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 3, 6, 4), &device)?)?;
        let a_as_t = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 3, 4, 5), &device)?)?;
        let cases = [
            (a.as_tensor().clone(), b.as_tensor().clone(), "plain"),
            (a.as_tensor().clone(), b_as_t.t()?, "b transposed"),
            (a_as_t.t()?, b.as_tensor().clone(), "a transposed"),
            (a_as_t.t()?, b_as_t.t()?, "both transposed"),
        ];
        let r = Tensor::randn(0f32, 1.0, (2, 3, 5, 6), &device)?;
        for (x, y, what) in cases {
            let ours = batched_matmul(&x, &y)?;
            let theirs = x.matmul(&y)?;
            assert_eq!(ours.dims(), [2, 3, 5, 6], "{what}");
            assert!(relative_error(&ours, &theirs) < 1e-6, "{what}: value");
            let grads = |c: &Tensor| (c * &r)?.sum_all()?.backward();
            let (g_ours, g_theirs) = (grads(&ours)?, grads(&theirs)?);
            for var in [&a, &b, &a_as_t, &b_as_t] {
                match (g_ours.get(var), g_theirs.get(var)) {
                    (Some(p), Some(q)) => {
                        let error = relative_error(p, q);
                        assert!(error < 1e-6, "{what}: gradient differs by {error:e}");
                    }
                    (None, None) => {}
                    _ => panic!("{what}: a gradient only one side has"),
                }
            }
        }
        Ok(())
    }
}
