//! 3×3 convolutions at stride 1 with padding 1 (ResNet-18's, but for its first layer) by
//! Winograd's minimal filtering F(2×2, 3×3), as Lavin and Gray lay it out for networks ("Fast
//! Algorithms for Convolutional Neural Networks", 2016). Each 2×2 block of outputs, a *tile*, is
//! `Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A` for its 4×4 input window `d` and a 3×3 kernel `g`; summed over
//! input channels, the element-wise product becomes 16 matrix products, one per point ξ of the
//! transformed tile:
//!
//! `M[ξ] (C_out, tiles) = U[ξ] (C_out, C) · V[ξ] (C, tiles)`, with `U = G g Gᵀ` and `V = Bᵀ d B`.
//!
//! That is 16·C·C_out multiply-adds per tile of four outputs, where im2col's product takes
//! 36·C·C_out: 2.25 times fewer. The transforms only add and halve, and a window's elements
//! are its input's, so the outputs differ from a direct convolution's by rounding alone.
//!
//! Every transform is linear, so each gradient is its adjoint, the transposed transform:
//! `∂V[ξ] = U[ξ]ᵀ · ∂M[ξ]` gives the input's gradient, `∂U[ξ] = ∂M[ξ] · V[ξ]ᵀ` the weight's,
//! with `∂M` the output transform's adjoint of `∂y`: the backward pass computes both from one
//! `∂M` per chunk, with the `U` the forward pass kept. Images are taken in chunks, one thread
//! each, as by the im2col path; a chunk's transformed tiles (4× its input) stay in cache.

use gemm::Parallelism;
use rayon::prelude::*;

use super::conv::{Geometry, chunks_per_thread};
use super::product::{Matrix, matmul};
use super::sum_in_order;

/// Points of a transformed tile (4 × 4).
const POINTS: usize = 16;

/// Side of a tile of outputs, and the step between neighbouring tiles' windows.
const TILE: usize = 2;

/// Taps of a 3×3 kernel.
const TAPS: usize = 9;

/// Kernels per block of the kernel transforms: the block's taps and points stay in L1.
const BLOCK: usize = 256;

/// Tiles a batch needs for this module to serve it: below, the kernels' transforms (16 points
/// per kernel, the weight gradient's partial sums) cost more than the products save. Measured
/// with `cargo xtask speed` at batch 32 on an AVX-512 Xeon, forward and backward against
/// im2col: 32×32 planes (8,192 tiles) 25 % faster, 16×16 (2,048) 20 %, 8×8 (512) 13 %, 4×4
/// (128) 40 % slower.
const MIN_TILES: usize = 512;

/// Whether geometry `g` is one this module computes: a 3×3 kernel at stride 1 with padding 1 on
/// planes of even sides, at least [`MIN_TILES`] tiles in the batch, and enough input channels
/// for the products to pay (the 3-channel first layer is left to im2col).
pub(crate) fn serves(g: &Geometry) -> bool {
    g.kernel == 3
        && g.stride == 1
        && g.padding == 1
        && g.height % TILE == 0
        && g.width % TILE == 0
        && g.batch * g.height * g.width / (TILE * TILE) >= MIN_TILES
        && g.channels >= 16
        && g.out_channels > 0
}

// The 1-D transforms along one axis, and their adjoints (transposes). The 2-D transforms apply
// them along columns and then rows (or the reverse); every coefficient is 0, ±1 or ±½.

/// `Bᵀ d`: a window's four inputs to its four points.
fn input_points([d0, d1, d2, d3]: [f32; 4]) -> [f32; 4] {
    [d0 - d2, d1 + d2, d2 - d1, d1 - d3]
}

/// `B v`, the adjoint of [`input_points`].
fn input_adjoint([v0, v1, v2, v3]: [f32; 4]) -> [f32; 4] {
    [v0, v1 - v2 + v3, v1 + v2 - v0, -v3]
}

/// `G g`: a kernel's three taps to four points.
fn kernel_points([g0, g1, g2]: [f32; 3]) -> [f32; 4] {
    [g0, (g0 + g1 + g2) * 0.5, (g0 - g1 + g2) * 0.5, g2]
}

/// `Gᵀ u`, the adjoint of [`kernel_points`].
fn kernel_adjoint([u0, u1, u2, u3]: [f32; 4]) -> [f32; 3] {
    [u0 + (u1 + u2) * 0.5, (u1 - u2) * 0.5, (u1 + u2) * 0.5 + u3]
}

/// `Aᵀ m`: four points to a tile's two outputs.
fn output_values([m0, m1, m2, m3]: [f32; 4]) -> [f32; 2] {
    [m0 + m1 + m2, m1 - m2 - m3]
}

/// `A y`, the adjoint of [`output_values`].
fn output_adjoint([y0, y1]: [f32; 2]) -> [f32; 4] {
    [y0, y0 + y1, y0 - y1, -y1]
}

/// `f` element by element across `inputs`, its results written to `outputs`. Every slice is
/// first cut to the outputs' length, so that no access in the loop is checked and it
/// vectorises.
#[allow(clippy::needless_range_loop)] // One index reads and writes every slice.
fn lanes<const I: usize, const O: usize>(
    inputs: [&[f32]; I],
    outputs: [&mut [f32]; O],
    f: impl Fn([f32; I]) -> [f32; O],
) {
    let len = outputs.iter().map(|o| o.len()).min().unwrap_or(0);
    let inputs = inputs.map(|s| &s[..len]);
    let mut outputs = outputs.map(|s| &mut s[..len]);
    for e in 0..len {
        let values = f(inputs.map(|s| s[e]));
        for (output, v) in outputs.iter_mut().zip(values) {
            output[e] = v;
        }
    }
}

/// `data` cut into `N` slices of `len`.
fn parts<const N: usize>(data: &[f32], len: usize) -> [&[f32]; N] {
    std::array::from_fn(|i| &data[i * len..][..len])
}

/// [`parts`], writable.
fn parts_mut<const N: usize>(data: &mut [f32], len: usize) -> [&mut [f32]; N] {
    let mut rest = &mut data[..N * len];
    std::array::from_fn(|_| {
        let (part, tail) = std::mem::take(&mut rest).split_at_mut(len);
        rest = tail;
        part
    })
}

/// How a convolution's planes split into tiles.
#[derive(Clone, Copy)]
struct Tiling {
    height: usize,
    width: usize,
    /// Tiles along a row: `W / 2`.
    across: usize,
    /// Tiles per plane: `H·W / 4`.
    per_plane: usize,
}

impl Tiling {
    fn of(g: &Geometry) -> Self {
        Tiling {
            height: g.height,
            width: g.width,
            across: g.width / TILE,
            per_plane: g.height * g.width / (TILE * TILE),
        }
    }

    /// Elements of a plane.
    fn plane(&self) -> usize {
        self.height * self.width
    }

    /// Elements of a plane's column phase (see [`column_phases`]): a row per padded row.
    fn phase(&self) -> usize {
        (self.height + 2) * self.across
    }

    /// Padded row `r`'s place in a column phase: row `r / 2` of half `r % 2`.
    fn padded_row(&self, r: usize) -> std::ops::Range<usize> {
        let row = (r % 2) * (self.height / TILE + 1) + r / 2;
        row * self.across..(row + 1) * self.across
    }

    /// The run of window row `k` of every tile in a column phase (see [`column_phases`]).
    fn window_row(&self, k: usize) -> std::ops::Range<usize> {
        let start = self.padded_row(k).start;
        start..start + self.per_plane
    }

    /// Tiles of a chunk of planes of `elements` in all, `channels` per image.
    fn tiles(&self, elements: usize, channels: usize) -> usize {
        elements / self.plane() / channels * self.per_plane
    }
}

/// The four column phases of `plane` padded by one zero on every side: phase `l` holds padded
/// element `(r, 2·tj + l)` (window column `l` of tile column `tj`) in row `r / 2` of its
/// even-row half (`r` even) or of its odd-row half. Window row `k` of every tile is then one
/// run: from row `k / 2` of half `k % 2`, [`Tiling::per_plane`] long.
fn column_phases(t: &Tiling, plane: &[f32], phases: &mut [f32]) {
    let [p0, p1, p2, p3] = parts_mut(phases, t.phase());
    for phase in [&mut *p0, &mut *p1, &mut *p2, &mut *p3] {
        phase[t.padded_row(0)].fill(0.0);
        phase[t.padded_row(t.height + 1)].fill(0.0);
    }
    let last = t.across - 1;
    for (i, x) in plane.chunks(t.width).enumerate() {
        let row = t.padded_row(i + 1);
        // Padded column 2·tj + l is input column 2·tj + l − 1: phases 1 and 2 hold the even and
        // odd input columns, phases 0 and 3 the odd and even ones shifted by a tile.
        let (even, odd) = (&mut p1[row.clone()], &mut p2[row.clone()]);
        for ((e, o), pair) in even.iter_mut().zip(odd.iter_mut()).zip(x.chunks_exact(2)) {
            (*e, *o) = (pair[0], pair[1]);
        }
        let (r0, r3) = (&mut p0[row.clone()], &mut p3[row]);
        r0[0] = 0.0;
        r0[1..].copy_from_slice(&odd[..last]);
        r3[..last].copy_from_slice(&even[1..]);
        r3[last] = 0.0;
    }
}

/// The adjoint of [`column_phases`]: the plane's gradient from the phases' (which it spoils).
fn phases_adjoint(t: &Tiling, phases: &mut [f32], plane: &mut [f32]) {
    let [p0, p1, p2, p3] = parts_mut(phases, t.phase());
    let last = t.across - 1;
    for (i, x) in plane.chunks_mut(t.width).enumerate() {
        let row = t.padded_row(i + 1);
        let (even, odd) = (&mut p1[row.clone()], &mut p2[row.clone()]);
        let (r0, r3) = (&p0[row.clone()], &p3[row]);
        even[1..]
            .iter_mut()
            .zip(&r3[..last])
            .for_each(|(e, g)| *e += g);
        odd[..last]
            .iter_mut()
            .zip(&r0[1..])
            .for_each(|(o, g)| *o += g);
        for ((&e, &o), pair) in even.iter().zip(odd.iter()).zip(x.chunks_exact_mut(2)) {
            (pair[0], pair[1]) = (e, o);
        }
    }
}

/// A thread's buffers for one chunk of images.
#[derive(Default)]
struct Scratch {
    /// `V` or `∂V`: `(POINTS, C, tiles)`.
    transformed: Vec<f32>,
    /// `M` or `∂M`: `(POINTS, C_out, tiles)`.
    products: Vec<f32>,
    /// One plane's four column phases.
    phases: Vec<f32>,
    /// The phases transformed along rows, or an output channel's partial transforms.
    partial: Vec<f32>,
}

impl Scratch {
    /// The first `len` elements of `buffer`, which grows (with zeros) to hold them but never
    /// shrinks: a chunk's buffers are sized once per thread, not zeroed again for every chunk.
    fn sized(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
        if buffer.len() < len {
            buffer.resize(len, 0.0);
        }
        &mut buffer[..len]
    }
}

/// `V (POINTS, C, tiles)` into `s.transformed`: the transformed windows of every tile of the
/// chunk's images `x (n, C, H, W)`, zero-padded by one: along rows over the column phases,
/// then along columns over the runs of window rows.
fn transform_input(t: &Tiling, x: &[f32], channels: usize, s: &mut Scratch) {
    let tiles = t.tiles(x.len(), channels);
    let transformed = Scratch::sized(&mut s.transformed, POINTS * channels * tiles);
    let phases = Scratch::sized(&mut s.phases, 4 * t.phase());
    let partial = Scratch::sized(&mut s.partial, 4 * t.phase());
    for (index, plane) in x.chunks(t.plane()).enumerate() {
        let (n, c) = (index / channels, index % channels);
        column_phases(t, plane, phases);
        lanes(
            parts(phases, t.phase()),
            parts_mut(partial, t.phase()),
            input_points,
        );
        let mut out = point_rows(transformed, (channels, tiles), c);
        let range = n * t.per_plane..(n + 1) * t.per_plane;
        for (j, column) in partial.chunks(t.phase()).enumerate() {
            let window = std::array::from_fn(|k| &column[t.window_row(k)]);
            lanes(window, pick(&mut out, j, 4, range.clone()), input_points);
        }
    }
}

/// The adjoint of [`transform_input`]: `∂x (n, C, H, W)` from `∂V` in `s.transformed`. Window
/// rows 2 and 3 of a tile are rows 0 and 1 of the next: their runs' gradients are computed
/// apart, in `lower`, then added on.
fn input_gradient_of(t: &Tiling, channels: usize, s: &mut Scratch, dx: &mut [f32]) {
    let tiles = t.tiles(dx.len(), channels);
    let transformed = &s.transformed[..POINTS * channels * tiles];
    let phases = Scratch::sized(&mut s.phases, 4 * t.phase());
    let partial = Scratch::sized(&mut s.partial, 4 * t.phase() + 2 * t.per_plane);
    let (partial, lower) = partial.split_at_mut(4 * t.phase());
    for (index, plane) in dx.chunks_mut(t.plane()).enumerate() {
        let (n, c) = (index / channels, index % channels);
        let gradients = point_rows_of(transformed, (channels, tiles), c);
        let range = n * t.per_plane..(n + 1) * t.per_plane;
        for (j, column) in partial.chunks_mut(t.phase()).enumerate() {
            let points = pick_of(&gradients, j, 4, range.clone());
            let (even, odd) = column.split_at_mut(t.phase() / 2);
            let (low0, low1) = lower.split_at_mut(t.per_plane);
            let (upper0, upper1) = (&mut even[..t.per_plane], &mut odd[..t.per_plane]);
            lanes(
                points,
                [upper0, upper1, &mut *low0, &mut *low1],
                input_adjoint,
            );
            for (half, low) in [(even, &*low0), (odd, &*low1)] {
                half[t.per_plane..].fill(0.0);
                half[t.across..]
                    .iter_mut()
                    .zip(low)
                    .for_each(|(g, &l)| *g += l);
            }
        }
        lanes(
            parts(partial, t.phase()),
            parts_mut(phases, t.phase()),
            input_adjoint,
        );
        phases_adjoint(t, phases, plane);
    }
}

/// The `POINTS` rows of a `(POINTS, rows, columns)` array that belong to row `r`.
fn point_rows_of(data: &[f32], (rows, columns): (usize, usize), r: usize) -> Vec<&[f32]> {
    data.chunks(columns).skip(r).step_by(rows).collect()
}

/// [`point_rows_of`], writable.
fn point_rows(data: &mut [f32], (rows, columns): (usize, usize), r: usize) -> Vec<&mut [f32]> {
    data.chunks_mut(columns).skip(r).step_by(rows).collect()
}

/// The chunk's outputs `y (n, C_out, H, W)` from `M` in `s.products`.
fn transform_output(t: &Tiling, out: usize, s: &mut Scratch, y: &mut [f32]) {
    let tiles = t.tiles(y.len(), out);
    let products = &s.products[..POINTS * out * tiles];
    let partial = Scratch::sized(&mut s.partial, 12 * tiles);
    for o in 0..out {
        let m = point_rows_of(products, (out, tiles), o);
        let (rows, values) = partial.split_at_mut(8 * tiles);
        let mut rows = parts_mut::<8>(rows, tiles);
        for j in 0..4 {
            let points = pick_of(&m, j, 4, 0..tiles);
            lanes(points, pick(&mut rows, 2 * j, 1, 0..tiles), output_values);
        }
        let rows = rows.map(|r| &*r);
        let mut values = parts_mut::<4>(values, tiles);
        for a in 0..TILE {
            let points = pick_of(&rows, a, 2, 0..tiles);
            lanes(points, pick(&mut values, 2 * a, 1, 0..tiles), output_values);
        }
        for (n, plane) in y.chunks_mut(t.plane()).skip(o).step_by(out).enumerate() {
            for (i, row) in plane.chunks_mut(t.width).enumerate() {
                let (ti, a) = (i / TILE, i % TILE);
                let first = n * t.per_plane + ti * t.across;
                let (left, right) = (&values[2 * a][first..], &values[2 * a + 1][first..]);
                for ((pair, &l), &r) in row.chunks_exact_mut(2).zip(left).zip(right) {
                    (pair[0], pair[1]) = (l, r);
                }
            }
        }
    }
}

/// The adjoint of [`transform_output`]: `∂M` into `s.products` from the chunk's `∂y`.
fn output_gradient_of(t: &Tiling, dy: &[f32], out: usize, s: &mut Scratch) {
    let tiles = t.tiles(dy.len(), out);
    let products = Scratch::sized(&mut s.products, POINTS * out * tiles);
    let partial = Scratch::sized(&mut s.partial, 12 * tiles);
    for o in 0..out {
        let (rows, values) = partial.split_at_mut(8 * tiles);
        let mut values = parts_mut::<4>(values, tiles);
        for (n, plane) in dy.chunks(t.plane()).skip(o).step_by(out).enumerate() {
            for (i, row) in plane.chunks(t.width).enumerate() {
                let (ti, a) = (i / TILE, i % TILE);
                let first = n * t.per_plane + ti * t.across;
                let [left, right] = pick::<2>(&mut values, 2 * a, 1, first..first + t.across);
                for ((l, r), pair) in left.iter_mut().zip(right).zip(row.chunks_exact(2)) {
                    (*l, *r) = (pair[0], pair[1]);
                }
            }
        }
        let mut rows = parts_mut::<8>(rows, tiles);
        for a in 0..TILE {
            let points = [&*values[2 * a], &*values[2 * a + 1]];
            let target = pick(&mut rows, a, 2, 0..tiles);
            lanes(points, target, output_adjoint);
        }
        let mut m = point_rows(products, (out, tiles), o);
        for j in 0..4 {
            let points = [&*rows[2 * j], &*rows[2 * j + 1]];
            lanes(points, pick(&mut m, j, 4, 0..tiles), output_adjoint);
        }
    }
}

/// `N` of `rows`, from `first` in steps of `step`, each cut to `range`.
fn pick<'a, const N: usize>(
    rows: &'a mut [&mut [f32]],
    first: usize,
    step: usize,
    range: std::ops::Range<usize>,
) -> [&'a mut [f32]; N] {
    let mut picked = rows.iter_mut().skip(first).step_by(step);
    std::array::from_fn(|_| &mut picked.next().expect("enough rows to pick from")[range.clone()])
}

/// [`pick`], read-only.
fn pick_of<'a, const N: usize>(
    rows: &[&'a [f32]],
    first: usize,
    step: usize,
    range: std::ops::Range<usize>,
) -> [&'a [f32]; N] {
    std::array::from_fn(|i| &rows[first + i * step][range.clone()])
}

/// `U (POINTS, C_out, C)`, the transformed kernels of `w (C_out, C, 3, 3)`, a block of kernels
/// at a time: its taps gathered tap-major, transformed along rows, then along columns. The
/// forward pass computes it, and the backward pass uses it again.
pub(crate) fn transform_kernels(w: &[f32]) -> Vec<f32> {
    let pairs = w.len() / TAPS;
    let mut u = vec![0f32; POINTS * pairs];
    let (mut taps, mut rows) = (vec![0f32; TAPS * BLOCK], vec![0f32; 12 * BLOCK]);
    for (block, kernels) in w.chunks(TAPS * BLOCK).enumerate() {
        let len = kernels.len() / TAPS;
        for (pair, kernel) in kernels.chunks(TAPS).enumerate() {
            for (tap, &v) in kernel.iter().enumerate() {
                taps[tap * BLOCK + pair] = v;
            }
        }
        let taps = parts::<TAPS>(&taps, BLOCK);
        let mut partial = parts_mut::<12>(&mut rows, BLOCK);
        for k in 0..3 {
            let row = pick_of(&taps, 3 * k, 1, 0..len);
            lanes(row, pick(&mut partial, 4 * k, 1, 0..len), kernel_points);
        }
        let partial = parts::<12>(&rows, BLOCK);
        let mut points = point_rows(&mut u, (1, pairs), 0);
        let range = block * BLOCK..block * BLOCK + len;
        for j in 0..4 {
            let column = pick_of(&partial, j, 4, 0..len);
            lanes(
                column,
                pick(&mut points, j, 4, range.clone()),
                kernel_points,
            );
        }
    }
    u
}

/// The adjoint of [`transform_kernels`]: `∂w (C_out, C, 3, 3)` from `∂U`.
fn kernels_gradient_of(du: &[f32]) -> Vec<f32> {
    let pairs = du.len() / POINTS;
    let mut dw = vec![0f32; TAPS * pairs];
    let (mut taps, mut rows) = (vec![0f32; TAPS * BLOCK], vec![0f32; 12 * BLOCK]);
    let points = point_rows_of(du, (1, pairs), 0);
    for (block, kernels) in dw.chunks_mut(TAPS * BLOCK).enumerate() {
        let len = kernels.len() / TAPS;
        let range = block * BLOCK..block * BLOCK + len;
        let mut partial = parts_mut::<12>(&mut rows, BLOCK);
        for j in 0..4 {
            let column = pick_of(&points, j, 4, range.clone());
            lanes(column, pick(&mut partial, j, 4, 0..len), kernel_adjoint);
        }
        let partial = parts::<12>(&rows, BLOCK);
        let mut gathered = parts_mut::<TAPS>(&mut taps, BLOCK);
        for k in 0..3 {
            let row = pick_of(&partial, 4 * k, 1, 0..len);
            lanes(row, pick(&mut gathered, 3 * k, 1, 0..len), kernel_adjoint);
        }
        for (pair, kernel) in kernels.chunks_mut(TAPS).enumerate() {
            for (tap, v) in kernel.iter_mut().enumerate() {
                *v = taps[tap * BLOCK + pair];
            }
        }
    }
    dw
}

/// One operand of [`point_products`]: a point-major array of `rows × columns` matrices, read
/// as they are or transposed.
#[derive(Clone, Copy)]
struct Points<'a> {
    data: &'a [f32],
    rows: usize,
    columns: usize,
    transposed: bool,
}

impl<'a> Points<'a> {
    fn new(data: &'a [f32], rows: usize, columns: usize) -> Self {
        Points {
            data,
            rows,
            columns,
            transposed: false,
        }
    }

    /// The same matrices, transposed.
    fn t(self) -> Self {
        Points {
            transposed: !self.transposed,
            ..self
        }
    }

    /// Point `point`'s matrix.
    fn matrix(&self, point: usize) -> Matrix<'a> {
        let len = self.rows * self.columns;
        let m = Matrix::new(&self.data[point * len..], self.rows, self.columns);
        if self.transposed { m.t() } else { m }
    }
}

/// The [`POINTS`] products `dst[ξ] = a[ξ] · b[ξ]`, or `dst[ξ] += a[ξ] · b[ξ]` when
/// `accumulate`, each `dst[ξ]` row-major.
fn point_products(
    dst: &mut [f32],
    a: Points,
    b: Points,
    accumulate: bool,
    parallelism: Parallelism,
) {
    for (point, dst) in dst.chunks_mut(dst.len() / POINTS).enumerate() {
        matmul(
            dst,
            a.matrix(point),
            b.matrix(point),
            accumulate,
            parallelism,
        );
    }
}

/// Images per chunk and how the chunk's products run.
fn chunking(g: &Geometry, t: &Tiling) -> (usize, Parallelism) {
    let chunk = g.chunk(t.per_plane);
    (chunk, g.parallelism(chunk))
}

/// `f(scratch, outputs, inputs)` for every chunk, the chunks cut into one run of consecutive
/// chunks per thread with one [`Scratch`] each: the scratch is sized (and zeroed) once per
/// thread, where rayon's `for_each_init` may build one for every piece it splits off.
fn for_each_chunk(
    (outputs, output_chunk): (&mut [f32], usize),
    (inputs, input_chunk): (&[f32], usize),
    f: impl Fn(&mut Scratch, &mut [f32], &[f32]) + Sync,
) {
    let per_thread = chunks_per_thread(inputs.len().div_ceil(input_chunk));
    outputs
        .par_chunks_mut(per_thread * output_chunk)
        .zip(inputs.par_chunks(per_thread * input_chunk))
        .for_each(|(outputs, inputs)| {
            let mut scratch = Scratch::default();
            let chunks = outputs.chunks_mut(output_chunk);
            for (outputs, inputs) in chunks.zip(inputs.chunks(input_chunk)) {
                f(&mut scratch, outputs, inputs);
            }
        });
}

/// `y (N, C_out, H, W) = conv(x, w)`, from the kernels' transform `u` ([`transform_kernels`]).
pub(crate) fn forward(g: &Geometry, x: &[f32], u: &[f32]) -> Vec<f32> {
    let t = Tiling::of(g);
    let (chunk, parallelism) = chunking(g, &t);
    let (channels, out) = (g.channels, g.out_channels);
    let mut y = vec![0f32; g.batch * out * t.plane()];
    let (outputs, inputs) = (
        (&mut y[..], chunk * out * t.plane()),
        (x, chunk * g.image()),
    );
    for_each_chunk(outputs, inputs, |s, y, x| {
        transform_input(&t, x, channels, s);
        let tiles = t.tiles(x.len(), channels);
        let products = Scratch::sized(&mut s.products, POINTS * out * tiles);
        let kernels = Points::new(u, out, channels);
        let windows = Points::new(&s.transformed, channels, tiles);
        point_products(products, kernels, windows, false, parallelism);
        transform_output(&t, out, s, y);
    });
    y
}

/// One chunk of images for [`gradients`]: its input, its output's gradient and, when the
/// input's gradient is wanted, where that goes.
struct GradientChunk<'a> {
    x: &'a [f32],
    dy: &'a [f32],
    dx: Option<&'a mut [f32]>,
}

/// The input's gradient `∂x (N, C, H, W)` (when `input`) and the weight's `∂w (C_out, C, 3,
/// 3)` from the input `x`, the output's gradient `dy` and the kernels' transform `u`, in one
/// pass over the chunks: each chunk's `∂M` is transformed once for both. One run of
/// consecutive chunks per thread sums its `∂M[ξ] · V[ξ]ᵀ`, and the runs' sums are added in
/// order, as the im2col path does.
pub(crate) fn gradients(
    g: &Geometry,
    (x, dy): (&[f32], &[f32]),
    u: &[f32],
    input: bool,
) -> (Option<Vec<f32>>, Vec<f32>) {
    let t = Tiling::of(g);
    let (chunk, parallelism) = chunking(g, &t);
    let (channels, out) = (g.channels, g.out_channels);
    let mut dx = input.then(|| vec![0f32; g.batch * g.image()]);
    let mut dx_chunks = dx
        .iter_mut()
        .flat_map(|dx| dx.chunks_mut(chunk * g.image()));
    let mut chunks: Vec<GradientChunk> = x
        .chunks(chunk * g.image())
        .zip(dy.chunks(chunk * out * t.plane()))
        .map(|(x, dy)| GradientChunk {
            x,
            dy,
            dx: dx_chunks.next(),
        })
        .collect();
    let per_thread = chunks_per_thread(chunks.len());
    let parts = chunks
        .par_chunks_mut(per_thread)
        .map(|run| {
            let (mut du, mut s) = (vec![0f32; POINTS * out * channels], Scratch::default());
            for chunk in run {
                let tiles = t.tiles(chunk.x.len(), channels);
                output_gradient_of(&t, chunk.dy, out, &mut s);
                if let Some(dx) = chunk.dx.as_deref_mut() {
                    let transformed = Scratch::sized(&mut s.transformed, POINTS * channels * tiles);
                    let kernels = Points::new(u, out, channels);
                    let gradients = Points::new(&s.products, out, tiles);
                    point_products(transformed, kernels.t(), gradients, false, parallelism);
                    input_gradient_of(&t, channels, &mut s, dx);
                }
                transform_input(&t, chunk.x, channels, &mut s);
                let gradients = Points::new(&s.products, out, tiles);
                let windows = Points::new(&s.transformed, channels, tiles);
                point_products(&mut du, gradients, windows.t(), true, parallelism);
            }
            du
        })
        .collect();
    let dw = kernels_gradient_of(&sum_in_order(parts, POINTS * out * channels));
    (dx, dw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv_products::tests::cases;
    use crate::relative_error;
    use candle_core::{Device, Result, Tensor, Var};

    /// `geometry`'s output, input gradient and weight gradient by this module, for output
    /// gradient `dy`.
    fn ours(g: &Geometry, x: &Tensor, w: &Tensor, dy: &Tensor) -> Result<[Tensor; 3]> {
        let (xs, ws) = (x.flatten_all()?.to_vec1()?, w.flatten_all()?.to_vec1()?);
        let dys = dy.flatten_all()?.to_vec1()?;
        let device = Device::Cpu;
        let u = transform_kernels(&ws);
        let (dx, dw) = gradients(g, (&xs, &dys), &u, true);
        let (_, dw_alone) = gradients(g, (&xs, &dys), &u, false);
        assert_eq!(dw, dw_alone, "the weight's gradient without the input's");
        Ok([
            Tensor::from_vec(forward(g, &xs, &u), dy.shape(), &device)?,
            Tensor::from_vec(dx.expect("asked for"), x.shape(), &device)?,
            Tensor::from_vec(dw, w.shape(), &device)?,
        ])
    }

    fn geometry(x: &Tensor, w: &Tensor) -> Result<Geometry> {
        let (batch, channels, height, width) = x.dims4()?;
        Ok(Geometry {
            batch,
            channels,
            height,
            width,
            out_channels: w.dim(0)?,
            kernel: 3,
            stride: 1,
            padding: 1,
        })
    }

    #[test]
    fn winograd_equals_pytorchs_convolution_and_gradients() -> Result<()> {
        let mut served = 0;
        for case in cases() {
            let t = |k: &str| case.tensors[k].clone();
            let (x, w) = (t("x"), t("w"));
            let g = geometry(&x, &w)?;
            if g.kernel != w.dim(2)? || case.params.stride != 1 || case.params.padding != 1 {
                continue;
            }
            served += 1;
            let [y, dx, dw] = ours(&g, &x, &w, &t("dy"))?;
            for (part, ours, pytorch) in
                [("y", y, t("y")), ("dx", dx, t("dx")), ("dw", dw, t("dw"))]
            {
                let error = relative_error(&ours, &pytorch);
                assert!(
                    error < 1e-5,
                    "{} {part}: {error:e} from PyTorch's",
                    case.name
                );
            }
        }
        assert_eq!(served, 2, "the fixture's 3×3 stride-1 cases");
        Ok(())
    }

    #[test]
    fn winograd_equals_candles_convolution_on_every_chunking() -> Result<()> {
        let device = Device::Cpu;
        // (N, C, H, W, C_out): chunks of several images and a shorter last one (16 tiles per
        // image, 16 images a chunk), one tile per plane, a wide plane, one image (products
        // parallel).
        for (n, c, h, w_, co) in [
            (21, 5, 8, 8, 3),
            (3, 2, 2, 2, 4),
            (2, 3, 4, 10, 2),
            (1, 4, 6, 6, 5),
        ] {
            let x = Var::randn(0f32, 1.0, (n, c, h, w_), &device)?;
            let w = Var::randn(0f32, 1.0, (co, c, 3, 3), &device)?;
            let y = x.as_tensor().conv2d(w.as_tensor(), 1, 1, 1, 1)?;
            let dy = Tensor::randn(0f32, 1.0, y.shape(), &device)?;
            let grads = (&y * &dy)?.sum_all()?.backward()?;
            let candle = [
                y,
                grads.get(&x).unwrap().clone(),
                grads.get(&w).unwrap().clone(),
            ];
            let g = geometry(x.as_tensor(), w.as_tensor())?;
            let ours = ours(&g, x.as_tensor(), w.as_tensor(), &dy)?;
            for ((part, a), b) in ["y", "dx", "dw"].iter().zip(&ours).zip(&candle) {
                let error = relative_error(a, b);
                assert!(
                    error < 1e-5,
                    "{n}×{c}×{h}×{w_} → {co} {part}: {error:e} from candle's"
                );
            }
        }
        Ok(())
    }
}
