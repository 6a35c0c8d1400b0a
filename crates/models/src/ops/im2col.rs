//! Convolution on the CPU as one matrix product: `im2col` lays every receptive field of the
//! batch out as a column, so that a convolution is `W (C_out, C·k·k) × cols (C·k·k, N·H'·W')`
//! and both of its gradients are products too (`∂W = ∂Y · colsᵀ`, `∂cols = Wᵀ · ∂Y`), run by
//! candle's GEMM; `col2im` sums `∂cols` back onto the input. candle's own CPU convolution takes
//! its input gradient through a transposed convolution written as a plain loop, which made the
//! backward pass of ResNet-18 several times slower than its forward pass.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use super::cpu_slice;

/// The geometry of a square convolution over a `(N, C, H, W)` input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl Geometry {
    /// The output's height and width.
    pub fn output(&self) -> (usize, usize) {
        let out = |size: usize| (size + 2 * self.padding - self.kernel) / self.stride + 1;
        (out(self.height), out(self.width))
    }

    /// Rows of the column matrix: `C·k·k`.
    fn rows(&self) -> usize {
        self.channels * self.kernel * self.kernel
    }

    /// Columns of the column matrix: `N·H'·W'`.
    fn columns(&self) -> usize {
        let (h, w) = self.output();
        self.batch * h * w
    }

    /// The output coordinates `first..last` along an axis of `size` whose input coordinate
    /// at kernel offset `k`, `o·s + k − p`, falls inside the input (the others read padding).
    fn inside(&self, k: usize, size: usize, out: usize) -> (usize, usize) {
        let (s, p) = (self.stride, self.padding);
        let first = p.saturating_sub(k).div_ceil(s);
        let last = (size + p).saturating_sub(k).div_ceil(s).min(out);
        (first, last.max(first))
    }

    /// Kernel position `kk` (row-major in the k×k kernel) as `(ki, kj)`, with the output rows
    /// and columns that read inside the input there.
    fn window(&self, kk: usize, (out_h, out_w): (usize, usize)) -> Window {
        let (ki, kj) = (kk / self.kernel, kk % self.kernel);
        Window {
            ki,
            kj,
            rows: self.inside(ki, self.height, out_h),
            columns: self.inside(kj, self.width, out_w),
        }
    }

    /// The input coordinate of output coordinate `o` at kernel offset `k` (inside only).
    fn source(&self, o: usize, k: usize) -> usize {
        o * self.stride + k - self.padding
    }
}

/// One kernel position and the output ranges that read inside the input from it.
struct Window {
    ki: usize,
    kj: usize,
    rows: (usize, usize),
    columns: (usize, usize),
}

/// `(N, C, H, W)` → `(C·k·k, N·H'·W')`: row `(c, ki, kj)`, column `(n, i, j)` holds
/// `x[n, c, i·s + ki − p, j·s + kj − p]`, or 0 in the padding.
pub(crate) struct Im2Col(pub Geometry);

/// The adjoint of [`Im2Col`]: `(C·k·k, N·H'·W')` → `(N, C, H, W)`, each input element the sum of
/// the column entries that copied it.
pub(crate) struct Col2Im(pub Geometry);

/// Runs `f` on the storage's contiguous slice in its own type, for `f32` and `bf16`.
fn dispatch(
    name: &str,
    storage: &CpuStorage,
    layout: &Layout,
    f32_op: impl FnOnce(&[f32]) -> Vec<f32>,
    bf16_op: impl FnOnce(&[half::bf16]) -> Vec<half::bf16>,
) -> Result<CpuStorage> {
    Ok(match storage.dtype() {
        DType::F32 => CpuStorage::F32(f32_op(cpu_slice(name, storage, layout)?)),
        DType::BF16 => CpuStorage::BF16(bf16_op(cpu_slice(name, storage, layout)?)),
        other => candle_core::bail!("{name}: f32 or bf16 only, not {other:?}"),
    })
}

fn im2col<T: WithDType>(g: &Geometry, x: &[T]) -> Vec<T> {
    let (out_h, out_w) = g.output();
    let plane = out_h * out_w;
    let columns = g.columns();
    let mut cols = vec![T::zero(); g.rows() * columns];
    cols.par_chunks_mut(columns)
        .enumerate()
        .for_each(|(row, out)| {
            let (c, kk) = (row / (g.kernel * g.kernel), row % (g.kernel * g.kernel));
            let Window {
                ki,
                kj,
                rows,
                columns: (first, last),
            } = g.window(kk, (out_h, out_w));
            for n in 0..g.batch {
                let image = &x[(n * g.channels + c) * g.height * g.width..][..g.height * g.width];
                let out = &mut out[n * plane..][..plane];
                for i in rows.0..rows.1 {
                    let source = &image[g.source(i, ki) * g.width..][..g.width];
                    let target = &mut out[i * out_w..][first..last];
                    if g.stride == 1 {
                        let from = g.source(first, kj);
                        target.copy_from_slice(&source[from..from + (last - first)]);
                    } else {
                        for (t, j) in target.iter_mut().zip(first..last) {
                            *t = source[g.source(j, kj)];
                        }
                    }
                }
            }
        });
    cols
}

fn col2im(g: &Geometry, cols: &[f32]) -> Vec<f32> {
    let (out_h, out_w) = g.output();
    let plane = out_h * out_w;
    let columns = g.columns();
    let k2 = g.kernel * g.kernel;
    let mut x = vec![0f32; g.batch * g.channels * g.height * g.width];
    // One (n, c) image per task: it gathers from its own k·k rows, so no two tasks write one
    // element.
    x.par_chunks_mut(g.height * g.width)
        .enumerate()
        .for_each(|(nc, image)| {
            let (n, c) = (nc / g.channels, nc % g.channels);
            for kk in 0..k2 {
                let Window {
                    ki,
                    kj,
                    rows,
                    columns: (first, last),
                } = g.window(kk, (out_h, out_w));
                let row = &cols[(c * k2 + kk) * columns + n * plane..][..plane];
                for i in rows.0..rows.1 {
                    let target = &mut image[g.source(i, ki) * g.width..][..g.width];
                    let source = &row[i * out_w..][first..last];
                    if g.stride == 1 {
                        let from = g.source(first, kj);
                        for (t, &v) in target[from..from + (last - first)].iter_mut().zip(source) {
                            *t += v;
                        }
                    } else {
                        for (&v, j) in source.iter().zip(first..last) {
                            target[g.source(j, kj)] += v;
                        }
                    }
                }
            }
        });
    x
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "lrlab-im2col"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = &self.0;
        let expected = [g.batch, g.channels, g.height, g.width];
        if layout.dims() != expected {
            candle_core::bail!("im2col: input {:?}, expected {expected:?}", layout.dims());
        }
        let cols = dispatch(
            self.name(),
            storage,
            layout,
            |x| im2col(g, x),
            |x| im2col(g, x),
        )?;
        Ok((cols, Shape::from((g.rows(), g.columns()))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&Col2Im(self.0))?))
    }
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "lrlab-col2im"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = &self.0;
        if layout.dims() != [g.rows(), g.columns()] {
            candle_core::bail!("col2im: input {:?}", layout.dims());
        }
        let x = dispatch(
            self.name(),
            storage,
            layout,
            |c| col2im(g, c),
            // Up to k² columns add into one element: sum in f32, round once.
            |c| {
                let wide: Vec<f32> = c.iter().map(|v| v.to_f32()).collect();
                col2im(g, &wide)
                    .into_iter()
                    .map(half::bf16::from_f32)
                    .collect()
            },
        )?;
        Ok((x, Shape::from((g.batch, g.channels, g.height, g.width))))
    }
}

/// `x (N, C, H, W)` convolved with `weight (C_out, C, k, k)` at `stride` and `padding`, on the
/// CPU as im2col and one matrix product; differentiable in both.
pub(crate) fn conv2d(x: &Tensor, weight: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    let (batch, channels, height, width) = x.dims4()?;
    let (out_channels, _, kernel, _) = weight.dims4()?;
    let g = Geometry {
        batch,
        channels,
        height,
        width,
        kernel,
        stride,
        padding,
    };
    let (out_h, out_w) = g.output();
    let cols = x.contiguous()?.apply_op1(Im2Col(g))?;
    let w = weight.reshape((out_channels, g.rows()))?;
    // (C_out, N·H'·W') → (N, C_out, H', W').
    w.matmul(&cols)?
        .reshape((out_channels, batch, out_h * out_w))?
        .transpose(0, 1)?
        .contiguous()?
        .reshape((batch, out_channels, out_h, out_w))
}

/// Whether [`conv2d`] serves `x`: `f32` or `bf16` on the CPU.
pub(crate) fn supported(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::BF16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::relative_error as relative;
    use candle_core::{Device, Var};

    /// Output, input gradient and weight gradient of `conv` for a random weighting of the
    /// output.
    fn run(
        x: &Var,
        w: &Var,
        r: &Tensor,
        conv: impl Fn(&Tensor, &Tensor) -> Result<Tensor>,
    ) -> (Tensor, Tensor, Tensor) {
        let y = conv(x.as_tensor(), w.as_tensor()).unwrap();
        let grads = (&y.to_dtype(DType::F32).unwrap() * r)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let grad = |v: &Var| {
            grads
                .get(v.as_tensor())
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap()
        };
        (y.to_dtype(DType::F32).unwrap(), grad(x), grad(w))
    }

    #[test]
    fn im2col_convolution_equals_candles_in_value_and_gradients() {
        let device = Device::Cpu;
        // (N, C, H, W, C_out, k, stride, padding): ResNet's three kinds, and odd shapes.
        let cases = [
            (2, 3, 7, 5, 4, 3, 1, 1),
            (2, 3, 8, 8, 6, 3, 2, 1),
            (3, 4, 8, 6, 5, 1, 2, 0),
            (1, 2, 5, 5, 3, 1, 1, 0),
            (2, 2, 6, 7, 3, 3, 1, 0),
            (2, 3, 9, 9, 2, 5, 2, 2),
            (1, 1, 3, 3, 1, 3, 3, 1),
        ];
        for (n, c, h, w_, co, k, s, p) in cases {
            let what = format!("{n}×{c}×{h}×{w_} → {co}, k {k}, stride {s}, padding {p}");
            let x = Var::randn(0f32, 1.0, (n, c, h, w_), &device).unwrap();
            let w = Var::randn(0f32, 1.0, (co, c, k, k), &device).unwrap();
            let candle = |x: &Tensor, w: &Tensor| x.conv2d(w, p, s, 1, 1);
            let shape = candle(x.as_tensor(), w.as_tensor())
                .unwrap()
                .shape()
                .clone();
            let r = Tensor::randn(0f32, 1.0, shape, &device).unwrap();
            let expected = run(&x, &w, &r, candle);
            let ours = run(&x, &w, &r, |x, w| conv2d(x, w, s, p));
            for (part, a, b) in [
                ("output", &ours.0, &expected.0),
                ("input gradient", &ours.1, &expected.1),
                ("weight gradient", &ours.2, &expected.2),
            ] {
                assert_eq!(a.dims(), b.dims(), "{what}: {part}");
                let error = relative(a, b);
                assert!(error < 1e-5, "{what}: {part} differs by {error:e}");
            }
            // In bf16, against candle's f32 convolution of the same bf16-rounded values: products
            // accumulate in f32 and only results round to bfloat16 (2⁻⁸), so agreement to 1e-2.
            let round = |t: &Tensor| t.to_dtype(DType::BF16)?.to_dtype(DType::F32);
            let rounded = |x: &Tensor, w: &Tensor| candle(&round(x)?, &round(w)?);
            let expected = run(&x, &w, &round(&r).unwrap(), rounded);
            let bf16 = |x: &Tensor, w: &Tensor| {
                conv2d(&x.to_dtype(DType::BF16)?, &w.to_dtype(DType::BF16)?, s, p)
            };
            let (y16, dx16, dw16) = run(&x, &w, &r, bf16);
            for (part, a, b) in [
                ("bf16 output", &y16, &expected.0),
                ("bf16 input gradient", &dx16, &expected.1),
                ("bf16 weight gradient", &dw16, &expected.2),
            ] {
                let error = relative(a, b);
                assert!(error < 1e-2, "{what}: {part} differs by {error:e}");
            }
        }
    }
}
