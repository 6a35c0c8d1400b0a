//! Convolution on the CPU as matrix products over chunks of images, forward and backward in
//! one operation each. `im2col` lays a chunk's receptive fields out as columns, so that its
//! convolution is `W (C_out, C·k·k) × cols (C·k·k, n·H'·W')`, the weight's gradient is
//! `∂Y · colsᵀ` and the columns' is `Wᵀ · ∂Y`, which `col2im` sums back onto the input. Chunks
//! run in parallel, one thread each, their columns a few megabytes that stay in cache and never
//! become a tensor: candle's CPU convolution takes its input gradient through a transposed
//! convolution written as a plain loop, and one product over the whole batch's columns (75 MB for
//! ResNet-18's first stage at batch 32) spends its time faulting in and zeroing fresh pages.
//! `bf16` is widened to `f32` and its results rounded once, as candle's CPU product does.
//!
//! 3×3 convolutions at stride 1 with padding 1 on enough tiles (`winograd.rs`) take Winograd's
//! minimal filtering instead, in the same chunks: F(4×4, 3×3) on planes whose sides are
//! multiples of 4 (4 times fewer multiply-adds), F(2×2, 3×3) on other even ones (2.25 times).

use std::borrow::Cow;
use std::sync::OnceLock;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use gemm::Parallelism;

use super::conv_products::conv2d_with_product_gradients;
use super::product::{Matrix, matmul};
use super::winograd;
use super::{sum_in_order, with_cpu_slices};
use rayon::prelude::*;

/// Consecutive chunks per thread when `chunks` are cut into one run per thread: a fixed
/// grouping, so that sums over the runs, added in order, are the same numbers every time.
pub(crate) fn chunks_per_thread(chunks: usize) -> usize {
    chunks.div_ceil(rayon::current_num_threads()).max(1)
}

/// The geometry of a square convolution of a `(N, C, H, W)` input into `C_out` channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

/// Output columns a chunk's product should have at least: narrower products waste the GEMM's
/// micro-kernel and re-pack the weight for little work.
const CHUNK_COLUMNS: usize = 256;

impl Geometry {
    /// The output's height and width.
    pub fn output(&self) -> (usize, usize) {
        let params = ConvParams {
            padding: self.padding,
            stride: self.stride,
            ..ConvParams::default()
        };
        let out = |size| params.output_size(size, self.kernel);
        (out(self.height), out(self.width))
    }

    /// Output elements per channel of one image: `H'·W'`.
    fn plane(&self) -> usize {
        let (h, w) = self.output();
        h * w
    }

    /// Rows of the column matrix: `C·k·k`.
    fn rows(&self) -> usize {
        self.channels * self.kernel * self.kernel
    }

    /// Elements of one input image, `C·H·W`.
    pub(crate) fn image(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Images per chunk when each image gives a product `columns` columns: enough for
    /// [`CHUNK_COLUMNS`], but no more than keeps every thread busy.
    pub(crate) fn chunk(&self, columns: usize) -> usize {
        let wide = CHUNK_COLUMNS.div_ceil(columns);
        let per_thread = self.batch.div_ceil(rayon::current_num_threads());
        wide.min(per_thread).max(1)
    }

    /// How the products of chunks of `chunk` images run: on their chunk's thread, unless there
    /// are fewer chunks than threads (a small batch), when each product is parallel itself.
    pub(crate) fn parallelism(&self, chunk: usize) -> Parallelism {
        let threads = rayon::current_num_threads();
        if self.batch.div_ceil(chunk) >= threads {
            Parallelism::None
        } else {
            Parallelism::Rayon(threads)
        }
    }

    /// Whether the weight's gradient is computed transposed, `cols · ∂Yᵀ`, and transposed back:
    /// as written, `∂Y · colsᵀ` with few output channels, `gemm` runs at half its rate (the
    /// columns re-packed for little work each), so ResNet-18's 64-channel convolution
    /// (`cargo xtask speed --workloads conv3x3-c64-b32`) took 0.042 s where it now takes
    /// 0.035 s. Past 128 channels the gain no longer repays the pass that transposes back.
    fn weight_gradient_transposed(&self) -> bool {
        self.out_channels <= 128 && self.rows() > self.out_channels
    }

    /// This geometry for `images` of the batch.
    fn of(&self, images: usize) -> Geometry {
        Geometry {
            batch: images,
            ..*self
        }
    }

    /// The output coordinates `first..last` along an axis of `size` whose input coordinate
    /// at kernel offset `k`, `o·s + k − p`, falls inside the input (the others read padding).
    fn inside(&self, k: usize, size: usize, out: usize) -> (usize, usize) {
        let (s, p) = (self.stride, self.padding);
        let first = p.saturating_sub(k).div_ceil(s);
        let last = (size + p).saturating_sub(k).div_ceil(s).min(out);
        (first, last.max(first))
    }

    /// Every kernel position (row-major in the k×k kernel) as `(ki, kj)`, with the output rows
    /// and columns that read inside the input there.
    fn windows(&self) -> Vec<Window> {
        let (out_h, out_w) = self.output();
        (0..self.kernel * self.kernel)
            .map(|kk| {
                let (ki, kj) = (kk / self.kernel, kk % self.kernel);
                Window {
                    ki,
                    kj,
                    rows: self.inside(ki, self.height, out_h),
                    columns: self.inside(kj, self.width, out_w),
                }
            })
            .collect()
    }

    /// For a convolution whose output plane has its input's size at stride 1 (ResNet's 3×3
    /// convolutions with padding 1), kernel position `window` as one shift of the whole plane.
    fn shift(&self, window: &Window) -> Option<Shift> {
        let same = self.stride == 1 && self.output() == (self.height, self.width);
        same.then(|| {
            let (w, p) = (self.width, self.padding);
            Shift {
                offset: (window.ki * w + window.kj) as isize - (p * w + p) as isize,
                width: w,
                rows: window.rows,
                columns: window.columns,
            }
        })
    }

    /// The input coordinate of output coordinate `o` at kernel offset `k` (inside only).
    fn source(&self, o: usize, k: usize) -> usize {
        o * self.stride + k - self.padding
    }
}

/// One kernel position of a same-size, stride-1 convolution: output element `t` of a plane
/// (row-major, the input's width) reads input element `t + offset` when its row and column
/// are inside (rows and columns as in [`Window`]); the element a column outside reads instead
/// is its neighbour row's, and must not count. So a plane's column row is one copy of the
/// input plane, its outside columns then set to zero: one `memcpy` per plane where copying row
/// by row made one per row of 4 to 32 elements.
struct Shift {
    offset: isize,
    width: usize,
    rows: (usize, usize),
    columns: (usize, usize),
}

impl Shift {
    /// The output elements of the inside rows whose input element is in the plane of `len`.
    fn span(&self, len: usize) -> std::ops::Range<usize> {
        let (lo, hi) = (self.rows.0 * self.width, self.rows.1 * self.width);
        let lo = lo.max(self.offset.min(0).unsigned_abs());
        let hi = hi.min(len.saturating_sub(self.offset.max(0) as usize));
        lo..hi.max(lo)
    }

    /// `out` (the column row's part for one image) from the input `plane`.
    fn copy(&self, plane: &[f32], out: &mut [f32]) {
        let span = self.span(plane.len());
        out[..span.start].fill(0.0);
        out[span.end..].fill(0.0);
        let from = span.start.wrapping_add_signed(self.offset);
        out[span.clone()].copy_from_slice(&plane[from..from + span.len()]);
        let inside = &mut out[self.rows.0 * self.width..self.rows.1 * self.width];
        zero_outside_columns(inside, self.width, self.columns);
    }
}

/// Zeros the columns of the `width`-wide rows of `rows` outside `first..last`, one column at a
/// time down the rows: a strided loop, where a `fill` per row is a `memset` call per row for
/// one element or none.
fn zero_outside_columns(rows: &mut [f32], width: usize, (first, last): (usize, usize)) {
    for column in (0..first).chain(last..width) {
        rows[column..]
            .iter_mut()
            .step_by(width)
            .for_each(|v| *v = 0.0);
    }
}

/// One kernel position and the output ranges that read inside the input from it.
struct Window {
    ki: usize,
    kj: usize,
    rows: (usize, usize),
    columns: (usize, usize),
}

/// `x (n, C, H, W)` → `cols (C·k·k, n·H'·W')`: row `(c, ki, kj)`, column `(n, i, j)` holds
/// `x[n, c, i·s + ki − p, j·s + kj − p]`, or 0 in the padding. Every element of `cols` is
/// written.
fn im2col(g: &Geometry, x: &[f32], cols: &mut [f32]) {
    let (out_h, out_w) = g.output();
    let plane = out_h * out_w;
    let windows = g.windows();
    let shifts: Vec<Option<Shift>> = windows.iter().map(|window| g.shift(window)).collect();
    let k2 = windows.len();
    for (row, out) in cols.chunks_mut(g.batch * plane).enumerate() {
        let (c, kk) = (row / k2, row % k2);
        let window = &windows[kk];
        let (ki, kj, rows, (first, last)) = (window.ki, window.kj, window.rows, window.columns);
        for (n, out) in out.chunks_mut(plane).enumerate() {
            let image = &x[(n * g.channels + c) * g.height * g.width..][..g.height * g.width];
            if let Some(shift) = &shifts[kk] {
                shift.copy(image, out);
                continue;
            }
            out[..rows.0 * out_w].fill(0.0);
            out[rows.1 * out_w..].fill(0.0);
            let inside = &mut out[rows.0 * out_w..rows.1 * out_w];
            zero_outside_columns(inside, out_w, (first, last));
            for (i, target) in inside.chunks_mut(out_w).enumerate() {
                let i = rows.0 + i;
                let source = &image[g.source(i, ki) * g.width..][..g.width];
                let target = &mut target[first..last];
                let from = &source[g.source(first, kj)..];
                if g.stride == 1 {
                    target.copy_from_slice(&from[..target.len()]);
                } else {
                    // Every `stride`-th element from the first one read: an iterator, so no
                    // index is computed or checked per element.
                    for (t, &v) in target.iter_mut().zip(from.iter().step_by(g.stride)) {
                        *t = v;
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds every entry of `cols (C·k·k, n·H'·W')` onto the element of
/// `x (n, C, H, W)` it copied.
fn col2im(g: &Geometry, cols: &[f32], x: &mut [f32]) {
    let (out_h, out_w) = g.output();
    let plane = out_h * out_w;
    let columns = g.batch * plane;
    let windows = g.windows();
    let k2 = windows.len();
    for (nc, image) in x.chunks_mut(g.height * g.width).enumerate() {
        let (n, c) = (nc / g.channels, nc % g.channels);
        for (kk, window) in windows.iter().enumerate() {
            let (ki, kj, rows, (first, last)) = (window.ki, window.kj, window.rows, window.columns);
            let row = &cols[(c * k2 + kk) * columns + n * plane..][..plane];
            for i in rows.0..rows.1 {
                let target = &mut image[g.source(i, ki) * g.width..][..g.width];
                let source = &row[i * out_w..][first..last];
                let target = &mut target[g.source(first, kj)..];
                if g.stride == 1 {
                    for (t, &v) in target.iter_mut().zip(source) {
                        *t += v;
                    }
                } else {
                    for (t, &v) in target.iter_mut().step_by(g.stride).zip(source) {
                        *t += v;
                    }
                }
            }
        }
    }
}

/// `(a, b, p)` → `(b, a, p)` into `dst`: between a chunk's `(n, C_out, H'·W')` layout and its
/// product's `(C_out, n·H'·W')`.
fn swap_outer(src: &[f32], (a, b, p): (usize, usize, usize), dst: &mut [f32]) {
    for (i, block) in src.chunks(b * p).enumerate().take(a) {
        for (j, row) in block.chunks(p).enumerate() {
            dst[(j * a + i) * p..][..p].copy_from_slice(row);
        }
    }
}

/// `y (N, C_out, H', W') = conv(x, w)`.
fn forward(g: &Geometry, x: &[f32], w: &[f32]) -> Vec<f32> {
    let (plane, rows, out) = (g.plane(), g.rows(), g.out_channels);
    let chunk = g.chunk(plane);
    let parallelism = g.parallelism(chunk);
    let w = Matrix::new(w, out, rows);
    let mut y = vec![0f32; g.batch * out * plane];
    y.par_chunks_mut(chunk * out * plane)
        .zip(x.par_chunks(chunk * g.image()))
        .for_each_init(
            || (Vec::new(), Vec::new()),
            |(cols, product), (y, x)| {
                let part = g.of(x.len() / g.image());
                let cols = chunk_columns(&part, x, cols);
                if part.batch == 1 {
                    matmul(y, w, cols, false, parallelism);
                } else {
                    product.resize(out * part.batch * plane, 0.0);
                    matmul(product, w, cols, false, parallelism);
                    swap_outer(product, (out, part.batch, plane), y);
                }
            },
        );
    y
}

/// A chunk's columns `(C·k·k, n·H'·W')` of its images `x`, built in `buffer`.
fn chunk_columns<'a>(g: &Geometry, x: &[f32], buffer: &'a mut Vec<f32>) -> Matrix<'a> {
    let (rows, columns) = (g.rows(), g.batch * g.plane());
    buffer.resize(rows * columns, 0.0);
    im2col(g, x, buffer);
    Matrix::new(buffer, rows, columns)
}

/// A chunk's output gradient `(n, C_out, H'·W')` as its product's `(C_out, n·H'·W')`: `dy`
/// itself for one image, else rearranged into `buffer`.
fn chunk_gradient<'a>(g: &Geometry, dy: &'a [f32], buffer: &'a mut Vec<f32>) -> Matrix<'a> {
    let (out, columns) = (g.out_channels, g.batch * g.plane());
    if g.batch == 1 {
        return Matrix::new(dy, out, columns);
    }
    buffer.resize(out * columns, 0.0);
    swap_outer(dy, (g.batch, out, g.plane()), buffer);
    Matrix::new(buffer, out, columns)
}

/// `∂x (N, C, H, W)` from the output's gradient `dy` and the weight `w`.
fn input_gradient(g: &Geometry, dy: &[f32], w: &[f32]) -> Vec<f32> {
    let (plane, rows, out) = (g.plane(), g.rows(), g.out_channels);
    let chunk = g.chunk(plane);
    let parallelism = g.parallelism(chunk);
    let w = Matrix::new(w, out, rows);
    let mut dx = vec![0f32; g.batch * g.image()];
    dx.par_chunks_mut(chunk * g.image())
        .zip(dy.par_chunks(chunk * out * plane))
        .for_each_init(
            || (Vec::new(), Vec::new()),
            |(cols, gathered), (dx, dy)| {
                let part = g.of(dx.len() / g.image());
                let columns = part.batch * plane;
                let dy = chunk_gradient(&part, dy, gathered);
                cols.resize(rows * columns, 0.0);
                matmul(cols, w.t(), dy, false, parallelism);
                col2im(&part, cols, dx);
            },
        );
    dx
}

/// `∂w (C_out, C, k, k)` from the input `x` and the output's gradient `dy`: the chunks are cut
/// into one run of consecutive chunks per thread, each run sums its chunks' `∂Y · colsᵀ` in
/// place, and the runs' sums are added in order (a fixed grouping: the same numbers every time).
fn weight_gradient(g: &Geometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (plane, rows, out) = (g.plane(), g.rows(), g.out_channels);
    let chunk = g.chunk(plane);
    let parallelism = g.parallelism(chunk);
    let chunks: Vec<(&[f32], &[f32])> = x
        .chunks(chunk * g.image())
        .zip(dy.chunks(chunk * out * plane))
        .collect();
    let per_thread = chunks_per_thread(chunks.len());
    let transposed = g.weight_gradient_transposed();
    let parts = chunks
        .par_chunks(per_thread)
        .map(|run| {
            let (mut dw, mut cols, mut gathered) = (vec![0f32; out * rows], vec![], vec![]);
            for &(x, dy) in run {
                let part = g.of(x.len() / g.image());
                let columns = chunk_columns(&part, x, &mut cols);
                let dy = chunk_gradient(&part, dy, &mut gathered);
                match transposed {
                    true => matmul(&mut dw, columns, dy.t(), true, parallelism),
                    false => matmul(&mut dw, dy, columns.t(), true, parallelism),
                }
            }
            dw
        })
        .collect();
    let dw = sum_in_order(parts, out * rows);
    match transposed {
        true => transpose(&dw, rows, out),
        false => dw,
    }
}

/// The `(columns, rows)` transpose of the row-major `(rows, columns)` matrix `m`.
fn transpose(m: &[f32], rows: usize, columns: usize) -> Vec<f32> {
    let mut t = vec![0f32; m.len()];
    for (i, row) in m.chunks(columns).enumerate().take(rows) {
        for (j, &v) in row.iter().enumerate() {
            t[j * rows + i] = v;
        }
    }
    t
}

/// The elements of a contiguous `f32` or `bf16` CPU tensor as `f32`, widened if need be.
fn widened<'a>(op: &str, storage: &'a CpuStorage, layout: &Layout) -> Result<Cow<'a, [f32]>> {
    Ok(match storage {
        CpuStorage::F32(_) => Cow::Borrowed(super::cpu_slice(op, storage, layout)?),
        CpuStorage::BF16(_) => Cow::Owned(
            super::cpu_slice::<half::bf16>(op, storage, layout)?
                .iter()
                .map(|v| v.to_f32())
                .collect(),
        ),
        other => candle_core::bail!("{op}: f32 or bf16 only, not {:?}", other.dtype()),
    })
}

/// `values` as CPU storage of `dtype` (`f32`, or `bf16` rounded once).
fn narrowed(values: Vec<f32>, dtype: DType) -> CpuStorage {
    match dtype {
        DType::BF16 => CpuStorage::BF16(values.into_iter().map(half::bf16::from_f32).collect()),
        _ => CpuStorage::F32(values),
    }
}

/// Which function of its two operands a convolution operation computes.
#[derive(Clone, Copy, Debug)]
enum Part {
    /// `y` from `(x, w)`.
    Output,
    /// `∂x` from `(∂y, w)`.
    InputGradient,
    /// `∂w` from `(x, ∂y)`.
    WeightGradient,
}

/// One part of a convolution of the given geometry as a candle operation on two operands;
/// [`Part::Output`]'s backward runs the two others, or, where Winograd's transforms serve, both
/// gradients at once from the kernels' transform its forward pass kept.
struct Convolution {
    geometry: Geometry,
    part: Part,
    /// Winograd's transform of the kernels, from the forward pass, for the backward pass.
    kernels: OnceLock<Vec<f32>>,
}

impl Convolution {
    fn new(geometry: Geometry, part: Part) -> Self {
        Convolution {
            geometry,
            part,
            kernels: OnceLock::new(),
        }
    }

    /// Both gradients by Winograd's transforms from the kernels' transform `u`, in `x`'s and
    /// `w`'s types; the input's only when `input`.
    fn winograd_gradients(
        &self,
        (x, w, dy): (&Tensor, &Tensor, &Tensor),
        u: &[f32],
        input: bool,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (x32, dy32) = (x.to_dtype(DType::F32)?, dy.to_dtype(DType::F32)?);
        let (dx, dw) = with_cpu_slices(self.name(), [&x32, &dy32], |[x, dy]| {
            Ok(winograd::gradients(&self.geometry, (x, dy), u, input))
        })?;
        let like = |values: Vec<f32>, t: &Tensor| {
            Tensor::from_vec(values, t.shape(), t.device())?.to_dtype(t.dtype())
        };
        Ok((dx.map(|dx| like(dx, x)).transpose()?, Some(like(dw, w)?)))
    }
}

impl CustomOp2 for Convolution {
    fn name(&self) -> &'static str {
        match self.part {
            Part::Output => "lrlab-conv2d",
            Part::InputGradient => "lrlab-conv2d-input-grad",
            Part::WeightGradient => "lrlab-conv2d-weight-grad",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (g, name) = (&self.geometry, self.name());
        let (a, b) = (widened(name, s1, l1)?, widened(name, s2, l2)?);
        let (h, w) = g.output();
        let (input, weight, output) = (
            [g.batch, g.channels, g.height, g.width],
            [g.out_channels, g.channels, g.kernel, g.kernel],
            [g.batch, g.out_channels, h, w],
        );
        let (expected, result) = match self.part {
            Part::Output => ((input, weight), output),
            Part::InputGradient => ((output, weight), input),
            Part::WeightGradient => ((input, output), weight),
        };
        if l1.dims() != expected.0 || l2.dims() != expected.1 {
            candle_core::bail!(
                "{name}: operands {:?} and {:?}, expected {expected:?}",
                l1.dims(),
                l2.dims()
            );
        }
        let values = match self.part {
            Part::Output if winograd::serves(g) => {
                let u = self
                    .kernels
                    .get_or_init(|| winograd::transform_kernels(g, &b));
                winograd::forward(g, &a, u)
            }
            Part::Output => forward(g, &a, &b),
            Part::InputGradient => input_gradient(g, &a, &b),
            Part::WeightGradient => weight_gradient(g, &a, &b),
        };
        Ok((narrowed(values, s1.dtype()), Shape::from(&result)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let g = self.geometry;
        // The network's input needs no gradient: skip its product.
        let input = x.track_op();
        if let Some(u) = self.kernels.get() {
            return self.winograd_gradients((x, w, &dy), u, input);
        }
        let dx = match input {
            true => Some(dy.apply_op2_no_bwd(w, &Convolution::new(g, Part::InputGradient))?),
            false => None,
        };
        let dw = x.apply_op2_no_bwd(&dy, &Convolution::new(g, Part::WeightGradient))?;
        Ok((dx, Some(dw)))
    }
}

/// A 2-d convolution's settings, as PyTorch's `Conv2d` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvParams {
    /// Zeros added on every side of each image.
    pub padding: usize,
    /// Step between receptive fields.
    pub stride: usize,
    /// Spacing between a kernel's taps.
    pub dilation: usize,
    /// Channel groups convolved separately.
    pub groups: usize,
}

impl ConvParams {
    /// The output's side for an input side `size` and a `kernel × kernel` kernel, as PyTorch's
    /// `Conv2d` documents it: `⌊(size + 2·padding − dilation·(kernel − 1) − 1) / stride⌋ + 1`.
    pub fn output_size(&self, size: usize, kernel: usize) -> usize {
        (size + 2 * self.padding - self.dilation * (kernel - 1) - 1) / self.stride + 1
    }
}

impl Default for ConvParams {
    /// PyTorch's defaults: no padding, stride 1, no dilation, one group.
    fn default() -> Self {
        Self {
            padding: 0,
            stride: 1,
            dilation: 1,
            groups: 1,
        }
    }
}

/// `x (N, C, H, W)` convolved with `weight (C_out, C, k, k)`, without bias, differentiable in
/// both: the fused products over chunks of images for `f32` and `bf16` on the CPU (undilated,
/// one group); elsewhere candle's convolution, its gradients computed as convolutions too
/// (im2col and a product on every device) when undilated with one group.
pub fn conv2d(x: &Tensor, weight: &Tensor, params: ConvParams) -> Result<Tensor> {
    let ConvParams {
        padding,
        stride,
        dilation,
        groups,
    } = params;
    let fused = x.device().is_cpu()
        && matches!(x.dtype(), DType::F32 | DType::BF16)
        && dilation == 1
        && groups == 1;
    if !fused {
        if dilation == 1 && groups == 1 {
            return conv2d_with_product_gradients(x, weight, params);
        }
        return x.conv2d(weight, padding, stride, dilation, groups);
    }
    let (batch, channels, height, width) = x.dims4()?;
    let (out_channels, _, kernel, _) = weight.dims4()?;
    let g = Geometry {
        batch,
        channels,
        height,
        width,
        out_channels,
        kernel,
        stride,
        padding,
    };
    x.contiguous()?
        .apply_op2(&weight.contiguous()?, Convolution::new(g, Part::Output))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relative_error as relative;
    use candle_core::{Device, Var};

    fn params(stride: usize, padding: usize) -> ConvParams {
        ConvParams {
            stride,
            padding,
            ..ConvParams::default()
        }
    }

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
    fn operands_of_another_shape_are_refused_before_any_work() {
        let device = Device::Cpu;
        let g = Geometry {
            batch: 2,
            channels: 3,
            height: 8,
            width: 8,
            out_channels: 4,
            kernel: 3,
            stride: 1,
            padding: 1,
        };
        // A 1×1 weight where the geometry says 3×3: the product would read past its slice.
        let x = Tensor::zeros((2, 3, 8, 8), DType::F32, &device).unwrap();
        let w = Tensor::zeros((4, 3, 1, 1), DType::F32, &device).unwrap();
        let err = x
            .apply_op2_no_bwd(&w, &Convolution::new(g, Part::Output))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("lrlab-conv2d: operands [2, 3, 8, 8] and [4, 3, 1, 1]"),
            "{err}"
        );
    }

    #[test]
    fn convolution_equals_candles_in_value_and_gradients() {
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
            // Chunks of 16 images and a shorter last one; one image, its products parallel.
            (40, 3, 4, 4, 5, 3, 1, 1),
            (1, 3, 8, 8, 4, 3, 1, 1),
            // Winograd (`winograd.rs`): 16 channels or more, 3×3, stride 1, padding 1, even
            // sides, 512 tiles of 2×2; F(4×4, 3×3) on 8×8 planes, F(2×2, 3×3) on 6×6 ones.
            (33, 16, 8, 8, 6, 3, 1, 1),
            (57, 16, 6, 6, 6, 3, 1, 1),
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
            let ours = run(&x, &w, &r, |x, w| conv2d(x, w, params(s, p)));
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
                conv2d(
                    &x.to_dtype(DType::BF16)?,
                    &w.to_dtype(DType::BF16)?,
                    params(s, p),
                )
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
