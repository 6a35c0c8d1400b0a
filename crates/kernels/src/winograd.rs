//! 3×3 convolutions at stride 1 with padding 1 (ResNet-18's, but for its first layer) by
//! Winograd's minimal filtering F(m×m, 3×3), as Lavin and Gray lay it out for networks ("Fast
//! Algorithms for Convolutional Neural Networks", 2016). Each m×m block of outputs, a *tile*, is
//! `Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A` for its (m + 2)×(m + 2) input window `d` and a 3×3 kernel `g`;
//! summed over input channels, the element-wise product becomes (m + 2)² matrix products, one
//! per point ξ of the transformed tile:
//!
//! `M[ξ] (C_out, tiles) = U[ξ] (C_out, C) · V[ξ] (C, tiles)`, with `U = G g Gᵀ` and `V = Bᵀ d B`.
//!
//! Two sizes serve ([`Algorithm`]): F(2×2, 3×3) takes 16 multiply-adds per tile of four outputs
//! and input channel where im2col's product takes 36 (2.25 times fewer), and its transforms only
//! add and halve, so its outputs differ from a direct convolution's by rounding alone;
//! F(4×4, 3×3) takes 36 per tile of sixteen (4 times fewer), with transforms whose coefficients
//! reach 8 and ¹⁄₂₄, which cost it about one more decimal digit of an `f32` (relative errors of
//! a few 10⁻⁶ where F(2×2) has 10⁻⁷), and its tiles are four times fewer, so its products are
//! narrower on small planes.
//!
//! Every transform is linear, so each gradient is its adjoint, the transposed transform:
//! `∂V[ξ] = U[ξ]ᵀ · ∂M[ξ]` gives the input's gradient, `∂U[ξ] = ∂M[ξ] · V[ξ]ᵀ` the weight's,
//! with `∂M` the output transform's adjoint of `∂y`: the backward pass computes both from one
//! `∂M` per chunk, with the `U` the forward pass kept. Images are taken in chunks, one thread
//! each, as by the im2col path; a chunk's transformed tiles stay in cache.

use gemm::Parallelism;
use rayon::prelude::*;

use super::conv::{Geometry, chunks_per_thread};
use super::product::{Matrix, matmul};
use super::{add_onto, sum_in_order};

/// Taps of a 3×3 kernel.
const TAPS: usize = 9;

/// Kernels per block of the kernel transforms: the block's taps and points stay in L1.
const BLOCK: usize = 256;

/// F(2×2, 3×3) tiles a batch needs for this module to serve it: below, the kernels' transforms
/// (16 points per kernel, the weight gradient's partial sums) cost more than the products save.
/// Measured with `cargo xtask speed` at batch 32 on an AVX-512 Xeon, forward and backward
/// against im2col: 32×32 planes (8,192 tiles) 25 % faster, 16×16 (2,048) 20 %, 8×8 (512) 13 %,
/// 4×4 (128) 40 % slower.
const MIN_TILES: usize = 512;

/// Whether geometry `g` is one this module computes: a 3×3 kernel at stride 1 with padding 1 on
/// planes of even sides, at least [`MIN_TILES`] tiles in the batch, and enough input channels
/// for the products to pay (the 3-channel first layer is left to im2col).
pub(crate) fn serves(g: &Geometry) -> bool {
    g.kernel == 3
        && g.stride == 1
        && g.padding == 1
        && g.height % 2 == 0
        && g.width % 2 == 0
        && g.batch * g.height * g.width / 4 >= MIN_TILES
        && g.channels >= 16
        && g.out_channels > 0
}

/// The tile size a geometry this module serves takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Algorithm {
    /// F(2×2, 3×3).
    F2x2,
    /// F(4×4, 3×3).
    F4x4,
}

impl Algorithm {
    /// F(4×4, 3×3) on planes whose sides are multiples of 4, F(2×2, 3×3) on the other even
    /// ones. Measured with `cargo xtask speed` on an AVX2 EPYC, forward and both gradients at
    /// batch 32, F(4×4) against F(2×2): 32×32 planes 27 % faster, 16×16 17 %, 8×8 13 % (there
    /// F(2×2) cost the ResNet step 4 %); on ResNet's 4×4 stage, one F(4×4) tile per plane, 48 %
    /// slower than im2col, which [`MIN_TILES`] leaves it to.
    fn of(g: &Geometry) -> Self {
        if g.height % 4 == 0 && g.width % 4 == 0 {
            Algorithm::F4x4
        } else {
            Algorithm::F2x2
        }
    }
}

/// A minimal filtering algorithm F(M×M, 3×3), `N = M + 2`: its 1-D transforms along one axis
/// and their adjoints (transposes). The 2-D transforms apply them along rows and then columns
/// (or the reverse).
trait Filtering<const M: usize, const N: usize> {
    /// `Bᵀ d`: a window's `N` inputs to its `N` points.
    fn input_points(d: [f32; N]) -> [f32; N];
    /// `B v`, the adjoint of [`Filtering::input_points`].
    fn input_adjoint(v: [f32; N]) -> [f32; N];
    /// `G g`: a kernel's three taps to `N` points.
    fn kernel_points(g: [f32; 3]) -> [f32; N];
    /// `Gᵀ u`, the adjoint of [`Filtering::kernel_points`].
    fn kernel_adjoint(u: [f32; N]) -> [f32; 3];
    /// `Aᵀ m`: `N` points to a tile's `M` outputs.
    fn output_values(m: [f32; N]) -> [f32; M];
    /// `A y`, the adjoint of [`Filtering::output_values`].
    fn output_adjoint(y: [f32; M]) -> [f32; N];
}

/// F(2×2, 3×3): every coefficient 0, ±1 or ±½.
struct F2x2;

impl Filtering<2, 4> for F2x2 {
    #[inline(always)]
    fn input_points([d0, d1, d2, d3]: [f32; 4]) -> [f32; 4] {
        [d0 - d2, d1 + d2, d2 - d1, d1 - d3]
    }

    #[inline(always)]
    fn input_adjoint([v0, v1, v2, v3]: [f32; 4]) -> [f32; 4] {
        [v0, v1 - v2 + v3, v1 + v2 - v0, -v3]
    }

    #[inline(always)]
    fn kernel_points([g0, g1, g2]: [f32; 3]) -> [f32; 4] {
        [g0, (g0 + g1 + g2) * 0.5, (g0 - g1 + g2) * 0.5, g2]
    }

    #[inline(always)]
    fn kernel_adjoint([u0, u1, u2, u3]: [f32; 4]) -> [f32; 3] {
        [u0 + (u1 + u2) * 0.5, (u1 - u2) * 0.5, (u1 + u2) * 0.5 + u3]
    }

    #[inline(always)]
    fn output_values([m0, m1, m2, m3]: [f32; 4]) -> [f32; 2] {
        [m0 + m1 + m2, m1 - m2 - m3]
    }

    #[inline(always)]
    fn output_adjoint([y0, y1]: [f32; 2]) -> [f32; 4] {
        [y0, y0 + y1, y0 - y1, -y1]
    }
}

/// F(4×4, 3×3) on the points 0, ±1, ±2 and ∞ (Lavin and Gray's matrices).
struct F4x4;

impl Filtering<4, 6> for F4x4 {
    #[inline(always)]
    fn input_points([d0, d1, d2, d3, d4, d5]: [f32; 6]) -> [f32; 6] {
        let (odd, even) = (d3 - d1, d4 - d2);
        [
            4.0 * (d0 - d2) + (d4 - d2),
            (d3 + d4) - 4.0 * (d1 + d2),
            (d4 - d3) + 4.0 * (d1 - d2),
            even + 2.0 * odd,
            even - 2.0 * odd,
            4.0 * (d1 - d3) + (d5 - d3),
        ]
    }

    #[inline(always)]
    fn input_adjoint([v0, v1, v2, v3, v4, v5]: [f32; 6]) -> [f32; 6] {
        let (sum, difference) = (v1 + v2, v2 - v1);
        let (sum2, difference2) = (v3 + v4, v4 - v3);
        [
            4.0 * v0,
            4.0 * (difference + v5) + 2.0 * difference2,
            -5.0 * v0 - 4.0 * sum - sum2,
            -difference - 2.0 * difference2 - 5.0 * v5,
            v0 + sum + sum2,
            v5,
        ]
    }

    #[inline(always)]
    fn kernel_points([g0, g1, g2]: [f32; 3]) -> [f32; 6] {
        let (outer, middle) = (g0 + g2, g1);
        let (quarter, twelfth) = (g0 * (1.0 / 24.0) + g2 * (1.0 / 6.0), g1 * (1.0 / 12.0));
        [
            g0 * 0.25,
            -(outer + middle) * (1.0 / 6.0),
            -(outer - middle) * (1.0 / 6.0),
            quarter + twelfth,
            quarter - twelfth,
            g2,
        ]
    }

    #[inline(always)]
    fn kernel_adjoint([u0, u1, u2, u3, u4, u5]: [f32; 6]) -> [f32; 3] {
        let (sum, difference) = (u1 + u2, u2 - u1);
        let (sum2, difference2) = (u3 + u4, u3 - u4);
        [
            u0 * 0.25 - sum * (1.0 / 6.0) + sum2 * (1.0 / 24.0),
            difference * (1.0 / 6.0) + difference2 * (1.0 / 12.0),
            (sum2 - sum) * (1.0 / 6.0) + u5,
        ]
    }

    #[inline(always)]
    fn output_values([m0, m1, m2, m3, m4, m5]: [f32; 6]) -> [f32; 4] {
        let (sum, difference) = (m1 + m2, m1 - m2);
        let (sum2, difference2) = (m3 + m4, m3 - m4);
        [
            m0 + sum + sum2,
            difference + 2.0 * difference2,
            sum + 4.0 * sum2,
            difference + 8.0 * difference2 + m5,
        ]
    }

    #[inline(always)]
    fn output_adjoint([y0, y1, y2, y3]: [f32; 4]) -> [f32; 6] {
        let (even, odd) = (y0 + y2, y1 + y3);
        let (even4, odd8) = (y0 + 4.0 * y2, 2.0 * y1 + 8.0 * y3);
        [y0, even + odd, even - odd, even4 + odd8, even4 - odd8, y3]
    }
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
        let mut values = [0f32; I];
        for (v, input) in values.iter_mut().zip(&inputs) {
            *v = input[e];
        }
        for (output, v) in outputs.iter_mut().zip(f(values)) {
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

/// How a convolution's planes split into tiles of `tile × tile` outputs, and how the tiles of a
/// chunk of `images` are ordered: by row of tiles, then image, then column, so that one row of
/// tiles of every image of the chunk is one run, and every transform's loop runs over all the
/// chunk's tiles at once (over one image's, an 8×8 plane's loops would be four tiles long).
#[derive(Clone, Copy)]
struct Tiling {
    height: usize,
    width: usize,
    tile: usize,
    /// Tiles along a row: `W / tile`.
    across: usize,
    /// Tiles per plane: `H·W / tile²`.
    per_plane: usize,
    /// Images of the chunk.
    images: usize,
}

impl Tiling {
    /// The tiling of one image of geometry `g`.
    fn of(g: &Geometry, tile: usize) -> Self {
        assert!(tile.is_power_of_two(), "tiles of 2×2 or 4×4 outputs");
        Tiling {
            height: g.height,
            width: g.width,
            tile,
            across: g.width / tile,
            per_plane: g.height * g.width / (tile * tile),
            images: 1,
        }
    }

    /// This tiling for a chunk of planes of `elements` in all, `channels` per image.
    fn of_chunk(&self, elements: usize, channels: usize) -> Self {
        Tiling {
            images: elements / self.plane() / channels,
            ..*self
        }
    }

    /// Tiles of the chunk.
    #[inline]
    fn tiles(&self) -> usize {
        self.images * self.per_plane
    }

    /// Elements of a row of tiles, or of one of a column phase's padded rows: a row of every
    /// image's.
    #[inline]
    fn row(&self) -> usize {
        self.images * self.across
    }

    /// Row `r` of a plane, or of the padded plane, as its row of tiles and its row in the tile:
    /// a shift and a mask, as the tile's side is a power of two, where `r / tile` and
    /// `r % tile` took two divisions for every row of every plane.
    #[inline]
    fn split_row(&self, r: usize) -> (usize, usize) {
        (r >> self.tile.trailing_zeros(), r & (self.tile - 1))
    }

    /// Elements of a plane.
    #[inline]
    fn plane(&self) -> usize {
        self.height * self.width
    }

    /// Elements of one of a column phase's row groups (see [`column_phases`]): `H / tile + 1`
    /// rows.
    #[inline]
    fn group(&self) -> usize {
        (self.split_row(self.height).0 + 1) * self.row()
    }

    /// Elements of a column phase (every image of the chunk): `tile` row groups.
    #[inline]
    fn phase(&self) -> usize {
        self.tile * self.group()
    }

    /// Padded row `r`'s place in a column phase, every image's: row `r / tile` of group
    /// `r % tile`.
    #[inline]
    fn padded_row(&self, r: usize) -> std::ops::Range<usize> {
        let (tile_row, in_tile) = self.split_row(r);
        let start = in_tile * self.group() + tile_row * self.row();
        start..start + self.row()
    }

    /// Where each row of the chunk's planes goes in a column phase, image by image and row by
    /// row: image `n`'s part of padded row `r + 1` for its row `r`.
    fn image_rows(&self) -> impl Iterator<Item = std::ops::Range<usize>> {
        let t = *self;
        (0..t.images).flat_map(move |n| {
            (1..=t.height).map(move |r| {
                let start = t.padded_row(r).start + n * t.across;
                start..start + t.across
            })
        })
    }

    /// The run of window row `k` of every tile in a column phase (see [`column_phases`]).
    #[inline]
    fn window_row(&self, k: usize) -> std::ops::Range<usize> {
        let start = self.padded_row(k).start;
        start..start + self.tiles()
    }
}

/// The `M + 2` column phases of the chunk's `planes` (one per image) padded by one zero on
/// every side: phase `l` holds padded element `(r, M·tj + l)` of image `n` (window column `l`
/// of tile column `tj`) in row `r / M` of row group `r % M`, at `n · across + tj` in that row.
/// Window row `k` of every tile is then one run: from row `k / M` of group `k % M`,
/// [`Tiling::tiles`] long.
fn column_phases<'a, const M: usize, const N: usize>(
    t: &Tiling,
    planes: impl Iterator<Item = &'a [f32]>,
    phases: &mut [f32],
) {
    let mut phases = parts_mut::<N>(phases, t.phase());
    for phase in phases.iter_mut() {
        phase[t.padded_row(0)].fill(0.0);
        phase[t.padded_row(t.height + 1)].fill(0.0);
    }
    let [first, dealt @ .., end] = &mut phases[..] else {
        unreachable!("N = M + 2 phases")
    };
    let last = t.across - 1;
    let rows = planes.flat_map(|plane| plane.chunks(t.width));
    for (row, x) in t.image_rows().zip(rows) {
        // Padded column M·tj + l is input column M·tj + l − 1: phases 1 to M hold the input's
        // columns dealt out in turn, phase 0 the last of them shifted right by a tile, phase
        // M + 1 the first shifted left.
        let mut runs = dealt.iter_mut().map(|phase| &mut phase[row.clone()]);
        deal::<M>(x, std::array::from_fn(|_| runs.next().expect("M phases")));
        let (r0, r_end) = (&mut first[row.clone()], &mut end[row.clone()]);
        r0[0] = 0.0;
        r0[1..].copy_from_slice(&dealt[M - 1][row.clone()][..last]);
        r_end[..last].copy_from_slice(&dealt[0][row][1..]);
        r_end[last] = 0.0;
    }
}

/// The adjoint of [`column_phases`]: the planes' gradients from the phases' (which it spoils).
fn phases_adjoint<'a, const M: usize, const N: usize>(
    t: &Tiling,
    phases: &mut [f32],
    planes: impl Iterator<Item = &'a mut [f32]>,
) {
    let mut phases = parts_mut::<N>(phases, t.phase());
    let [first, dealt @ .., end] = &mut phases[..] else {
        unreachable!("N = M + 2 phases")
    };
    let last = t.across - 1;
    let rows = planes.flat_map(|plane| plane.chunks_mut(t.width));
    for (row, x) in t.image_rows().zip(rows) {
        let (r0, r_end) = (&first[row.clone()], &end[row.clone()]);
        add_onto(&mut dealt[0][row.clone()][1..], &r_end[..last]);
        add_onto(&mut dealt[M - 1][row.clone()][..last], &r0[1..]);
        interleave::<M>(std::array::from_fn(|l| &dealt[l][row.clone()]), x);
    }
}

/// `interleaved[M·e + b]` into `runs[b][e]`: a row's columns dealt out, one run per column of
/// a tile.
fn deal<const M: usize>(interleaved: &[f32], runs: [&mut [f32]; M]) {
    let len = interleaved.len() / M;
    let mut runs = runs.map(|r| &mut r[..len]);
    for (e, values) in interleaved.chunks_exact(M).enumerate() {
        for (run, &v) in runs.iter_mut().zip(values) {
            run[e] = v;
        }
    }
}

/// The reverse of [`deal`]: `runs[b][e]` into `interleaved[M·e + b]`.
fn interleave<const M: usize>(runs: [&[f32]; M], interleaved: &mut [f32]) {
    let len = interleaved.len() / M;
    let runs = runs.map(|r| &r[..len]);
    for (e, values) in interleaved.chunks_exact_mut(M).enumerate() {
        for (v, run) in values.iter_mut().zip(&runs) {
            *v = run[e];
        }
    }
}

/// A thread's buffers for one chunk of images.
#[derive(Default)]
struct Scratch {
    /// `V` or `∂V`: `(points, C, tiles)`.
    transformed: Vec<f32>,
    /// `M` or `∂M`: `(points, C_out, tiles)`.
    products: Vec<f32>,
    /// One channel's column phases, every image's of the chunk.
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

/// `V (N², C, tiles)` into `s.transformed`: the transformed windows of every tile of the
/// chunk's images `x (n, C, H, W)`, zero-padded by one: along rows over the column phases,
/// then along columns over the runs of window rows.
fn transform_input<const M: usize, const N: usize, F: Filtering<M, N>>(
    t: &Tiling,
    x: &[f32],
    channels: usize,
    s: &mut Scratch,
) {
    let tiles = t.tiles();
    let transformed = Scratch::sized(&mut s.transformed, N * N * channels * tiles);
    let phases = Scratch::sized(&mut s.phases, N * t.phase());
    let partial = Scratch::sized(&mut s.partial, N * t.phase());
    let windows: [_; N] = std::array::from_fn(|k| t.window_row(k));
    for c in 0..channels {
        let mut out = point_rows(transformed, (channels, tiles), c);
        let planes = x.chunks(t.plane()).skip(c).step_by(channels);
        column_phases::<M, N>(t, planes, phases);
        lanes(
            parts::<N>(phases, t.phase()),
            parts_mut::<N>(partial, t.phase()),
            F::input_points,
        );
        for (j, column) in partial.chunks(t.phase()).enumerate() {
            let window = std::array::from_fn(|k| &column[windows[k].clone()]);
            lanes(window, pick(&mut out, j, N, 0..tiles), F::input_points);
        }
    }
}

/// The adjoint of [`transform_input`]: `∂x (n, C, H, W)` from `∂V` in `s.transformed`.
fn input_gradient_of<const M: usize, const N: usize, F: Filtering<M, N>>(
    t: &Tiling,
    channels: usize,
    s: &mut Scratch,
    dx: &mut [f32],
) {
    let tiles = t.tiles();
    let transformed = &s.transformed[..N * N * channels * tiles];
    let phases = Scratch::sized(&mut s.phases, N * t.phase());
    let partial = Scratch::sized(&mut s.partial, N * t.phase() + 2 * tiles);
    let (partial, lower) = partial.split_at_mut(N * t.phase());
    for c in 0..channels {
        let gradients = point_rows_of(transformed, (channels, tiles), c);
        for (j, column) in partial.chunks_mut(t.phase()).enumerate() {
            let points = pick_of(&gradients, j, N, 0..tiles);
            window_rows_adjoint::<M, N, F>(t, points, column, lower);
        }
        lanes(
            parts::<N>(partial, t.phase()),
            parts_mut::<N>(phases, t.phase()),
            F::input_adjoint,
        );
        let planes = dx.chunks_mut(t.plane()).skip(c).step_by(channels);
        phases_adjoint::<M, N>(t, phases, planes);
    }
}

/// The adjoint of the transform along columns for one column phase: its window rows' gradients
/// from their points' `points`. Window rows `M` and `M + 1` of a tile are rows 0 and 1 of the
/// next: their runs' gradients are computed apart, in `lower`, then added on.
fn window_rows_adjoint<const M: usize, const N: usize, F: Filtering<M, N>>(
    t: &Tiling,
    points: [&[f32]; N],
    column: &mut [f32],
    lower: &mut [f32],
) {
    let (lower0, lower1) = lower.split_at_mut(t.tiles());
    let upper = column.chunks_mut(t.group()).map(|g| &mut g[..t.tiles()]);
    {
        let mut runs = upper.chain([&mut *lower0, &mut *lower1]);
        let runs = std::array::from_fn(|_| runs.next().expect("M groups and two lower runs"));
        lanes(points, runs, F::input_adjoint);
    }
    for (g, group) in column.chunks_mut(t.group()).enumerate() {
        group[t.tiles()..].fill(0.0);
        if let Some(low) = [&*lower0, &*lower1].get(g) {
            add_onto(&mut group[t.row()..], low);
        }
    }
}

/// The rows of a `(points, rows, columns)` array that belong to row `r`, one per point.
fn point_rows_of(data: &[f32], (rows, columns): (usize, usize), r: usize) -> Vec<&[f32]> {
    data.chunks(columns).skip(r).step_by(rows).collect()
}

/// [`point_rows_of`], writable.
fn point_rows(data: &mut [f32], (rows, columns): (usize, usize), r: usize) -> Vec<&mut [f32]> {
    data.chunks_mut(columns).skip(r).step_by(rows).collect()
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

/// Where the outputs of tile row `i / tile` fall in a chunk's tile order for image `n`, and
/// which row of those tiles plane row `i` is: `(first tile, row in the tile)`.
fn tile_row(t: &Tiling, n: usize, i: usize) -> (usize, usize) {
    let (tile_row, in_tile) = t.split_row(i);
    (tile_row * t.row() + n * t.across, in_tile)
}

/// The chunk's outputs `y (n, C_out, H, W)` from `M` in `s.products`: along columns, then
/// along rows, then dealt out to the planes.
fn transform_output<const M: usize, const N: usize, F: Filtering<M, N>>(
    t: &Tiling,
    out: usize,
    s: &mut Scratch,
    y: &mut [f32],
) {
    let tiles = t.tiles();
    let products = &s.products[..N * N * out * tiles];
    let partial = Scratch::sized(&mut s.partial, (N + M) * M * tiles);
    let (rows, values) = partial.split_at_mut(N * M * tiles);
    let mut rows: Vec<&mut [f32]> = rows.chunks_mut(tiles).collect();
    let mut values: Vec<&mut [f32]> = values.chunks_mut(tiles).collect();
    for o in 0..out {
        let m = point_rows_of(products, (out, tiles), o);
        for j in 0..N {
            let points = pick_of(&m, j, N, 0..tiles);
            lanes(
                points,
                pick(&mut rows, M * j, 1, 0..tiles),
                F::output_values,
            );
        }
        for a in 0..M {
            let points = std::array::from_fn(|j| &rows[M * j + a][..]);
            lanes(
                points,
                pick(&mut values, M * a, 1, 0..tiles),
                F::output_values,
            );
        }
        for (n, plane) in y.chunks_mut(t.plane()).skip(o).step_by(out).enumerate() {
            for (i, row) in plane.chunks_mut(t.width).enumerate() {
                let (first, a) = tile_row(t, n, i);
                let runs = std::array::from_fn(|b| &values[M * a + b][first..]);
                interleave::<M>(runs, row);
            }
        }
    }
}

/// The adjoint of [`transform_output`]: `∂M` into `s.products` from the chunk's `∂y`.
fn output_gradient_of<const M: usize, const N: usize, F: Filtering<M, N>>(
    t: &Tiling,
    dy: &[f32],
    out: usize,
    s: &mut Scratch,
) {
    let tiles = t.tiles();
    let products = Scratch::sized(&mut s.products, N * N * out * tiles);
    let partial = Scratch::sized(&mut s.partial, (N + M) * M * tiles);
    let (rows, values) = partial.split_at_mut(N * M * tiles);
    let mut rows: Vec<&mut [f32]> = rows.chunks_mut(tiles).collect();
    let mut values: Vec<&mut [f32]> = values.chunks_mut(tiles).collect();
    for o in 0..out {
        for (n, plane) in dy.chunks(t.plane()).skip(o).step_by(out).enumerate() {
            for (i, row) in plane.chunks(t.width).enumerate() {
                let (first, a) = tile_row(t, n, i);
                let mut runs = values[M * a..].iter_mut().map(|v| &mut v[first..]);
                deal::<M>(row, std::array::from_fn(|_| runs.next().expect("M runs")));
            }
        }
        for a in 0..M {
            let points = std::array::from_fn(|b| &values[M * a + b][..]);
            lanes(points, pick(&mut rows, a, M, 0..tiles), F::output_adjoint);
        }
        let mut m = point_rows(products, (out, tiles), o);
        for j in 0..N {
            let points = std::array::from_fn(|a| &rows[M * j + a][..]);
            lanes(points, pick(&mut m, j, N, 0..tiles), F::output_adjoint);
        }
    }
}

/// `U (N², C_out, C)`, the transformed kernels of `w (C_out, C, 3, 3)`, a block of kernels at a
/// time: its taps transformed along rows, then along columns.
fn transform_kernels_by<const M: usize, const N: usize, F: Filtering<M, N>>(w: &[f32]) -> Vec<f32> {
    let pairs = w.len() / TAPS;
    let mut u = vec![0f32; N * N * pairs];
    let (mut taps, mut rows) = (vec![0f32; TAPS * BLOCK], vec![0f32; 3 * N * BLOCK]);
    for (block, kernels) in w.chunks(TAPS * BLOCK).enumerate() {
        let len = kernels.len() / TAPS;
        for (pair, kernel) in kernels.chunks(TAPS).enumerate() {
            for (tap, &v) in kernel.iter().enumerate() {
                taps[tap * BLOCK + pair] = v;
            }
        }
        let taps = parts::<TAPS>(&taps, BLOCK);
        let mut partial: Vec<&mut [f32]> = rows.chunks_mut(BLOCK).collect();
        for k in 0..3 {
            let row = pick_of(&taps, 3 * k, 1, 0..len);
            lanes(row, pick(&mut partial, N * k, 1, 0..len), F::kernel_points);
        }
        let mut points = point_rows(&mut u, (1, pairs), 0);
        let range = block * BLOCK..block * BLOCK + len;
        for j in 0..N {
            let column = std::array::from_fn(|k| &partial[N * k + j][..len]);
            lanes(
                column,
                pick(&mut points, j, N, range.clone()),
                F::kernel_points,
            );
        }
    }
    u
}

/// The adjoint of [`transform_kernels_by`]: `∂w (C_out, C, 3, 3)` from `∂U`.
fn kernels_gradient_by<const M: usize, const N: usize, F: Filtering<M, N>>(du: &[f32]) -> Vec<f32> {
    let pairs = du.len() / (N * N);
    let mut dw = vec![0f32; TAPS * pairs];
    let (mut taps, mut rows) = (vec![0f32; TAPS * BLOCK], vec![0f32; 3 * N * BLOCK]);
    let points = point_rows_of(du, (1, pairs), 0);
    for (block, kernels) in dw.chunks_mut(TAPS * BLOCK).enumerate() {
        let len = kernels.len() / TAPS;
        let range = block * BLOCK..block * BLOCK + len;
        let mut partial: Vec<&mut [f32]> = rows.chunks_mut(BLOCK).collect();
        for j in 0..N {
            let column = pick_of(&points, j, N, range.clone());
            lanes(column, pick(&mut partial, j, N, 0..len), F::kernel_adjoint);
        }
        let mut gathered = parts_mut::<TAPS>(&mut taps, BLOCK);
        for k in 0..3 {
            let row = std::array::from_fn(|j| &partial[N * k + j][..len]);
            lanes(
                row,
                pick(&mut gathered, 3 * k, 1, 0..len),
                F::kernel_adjoint,
            );
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

/// The products `dst[ξ] = a[ξ] · b[ξ]` for each of `points`, or `dst[ξ] += a[ξ] · b[ξ]` when
/// `accumulate`, each `dst[ξ]` row-major.
fn point_products(
    (dst, points): (&mut [f32], usize),
    a: Points,
    b: Points,
    accumulate: bool,
    parallelism: Parallelism,
) {
    for (point, dst) in dst.chunks_mut(dst.len() / points).enumerate() {
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

/// `U (points, C_out, C)`, the transformed kernels of `w (C_out, C, 3, 3)` for the algorithm
/// geometry `g` takes. The forward pass computes it, and the backward pass uses it again.
pub(crate) fn transform_kernels(g: &Geometry, w: &[f32]) -> Vec<f32> {
    match Algorithm::of(g) {
        Algorithm::F2x2 => transform_kernels_by::<2, 4, F2x2>(w),
        Algorithm::F4x4 => transform_kernels_by::<4, 6, F4x4>(w),
    }
}

/// `y (N, C_out, H, W) = conv(x, w)`, from the kernels' transform `u` ([`transform_kernels`]).
pub(crate) fn forward(g: &Geometry, x: &[f32], u: &[f32]) -> Vec<f32> {
    match Algorithm::of(g) {
        Algorithm::F2x2 => forward_by::<2, 4, F2x2>(g, x, u),
        Algorithm::F4x4 => forward_by::<4, 6, F4x4>(g, x, u),
    }
}

/// The input's gradient `∂x (N, C, H, W)` (when `input`) and the weight's `∂w (C_out, C, 3,
/// 3)` from the input `x`, the output's gradient `dy` and the kernels' transform `u`.
pub(crate) fn gradients(
    g: &Geometry,
    x_dy: (&[f32], &[f32]),
    u: &[f32],
    input: bool,
) -> (Option<Vec<f32>>, Vec<f32>) {
    match Algorithm::of(g) {
        Algorithm::F2x2 => gradients_by::<2, 4, F2x2>(g, x_dy, u, input),
        Algorithm::F4x4 => gradients_by::<4, 6, F4x4>(g, x_dy, u, input),
    }
}

/// [`forward`] by F(M×M, 3×3).
fn forward_by<const M: usize, const N: usize, F: Filtering<M, N>>(
    g: &Geometry,
    x: &[f32],
    u: &[f32],
) -> Vec<f32> {
    let t = Tiling::of(g, M);
    let (chunk, parallelism) = chunking(g, &t);
    let (channels, out) = (g.channels, g.out_channels);
    let mut y = vec![0f32; g.batch * out * t.plane()];
    let (outputs, inputs) = (
        (&mut y[..], chunk * out * t.plane()),
        (x, chunk * g.image()),
    );
    for_each_chunk(outputs, inputs, |s, y, x| {
        let t = t.of_chunk(x.len(), channels);
        transform_input::<M, N, F>(&t, x, channels, s);
        let tiles = t.tiles();
        let products = Scratch::sized(&mut s.products, N * N * out * tiles);
        let kernels = Points::new(u, out, channels);
        let windows = Points::new(&s.transformed, channels, tiles);
        point_products((products, N * N), kernels, windows, false, parallelism);
        transform_output::<M, N, F>(&t, out, s, y);
    });
    y
}

/// One chunk of images for [`gradients_by`]: its input, its output's gradient and, when the
/// input's gradient is wanted, where that goes.
struct GradientChunk<'a> {
    x: &'a [f32],
    dy: &'a [f32],
    dx: Option<&'a mut [f32]>,
}

/// [`gradients`] by F(M×M, 3×3), in one pass over the chunks: each chunk's `∂M` is transformed
/// once for both gradients. One run of consecutive chunks per thread sums its
/// `∂M[ξ] · V[ξ]ᵀ`, and the runs' sums are added in order, as the im2col path does.
fn gradients_by<const M: usize, const N: usize, F: Filtering<M, N>>(
    g: &Geometry,
    (x, dy): (&[f32], &[f32]),
    u: &[f32],
    input: bool,
) -> (Option<Vec<f32>>, Vec<f32>) {
    let t = Tiling::of(g, M);
    let (chunk, parallelism) = chunking(g, &t);
    let (channels, out, points) = (g.channels, g.out_channels, N * N);
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
            let (mut du, mut s) = (vec![0f32; points * out * channels], Scratch::default());
            for chunk in run {
                let t = t.of_chunk(chunk.x.len(), channels);
                let tiles = t.tiles();
                output_gradient_of::<M, N, F>(&t, chunk.dy, out, &mut s);
                if let Some(dx) = chunk.dx.as_deref_mut() {
                    let transformed = Scratch::sized(&mut s.transformed, points * channels * tiles);
                    let kernels = Points::new(u, out, channels);
                    let gradients = Points::new(&s.products, out, tiles);
                    let dst = (transformed, points);
                    point_products(dst, kernels.t(), gradients, false, parallelism);
                    input_gradient_of::<M, N, F>(&t, channels, &mut s, dx);
                }
                transform_input::<M, N, F>(&t, chunk.x, channels, &mut s);
                let gradients = Points::new(&s.products, out, tiles);
                let windows = Points::new(&s.transformed, channels, tiles);
                point_products((&mut du, points), gradients, windows.t(), true, parallelism);
            }
            du
        })
        .collect();
    let du = sum_in_order(parts, points * out * channels);
    (dx, kernels_gradient_by::<M, N, F>(&du))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv_products::tests::cases;
    use crate::relative_error;
    use candle_core::{Device, Result, Tensor, Var};

    /// `g`'s output, input gradient and weight gradient by F(M×M, 3×3), for output gradient `dy`.
    fn ours<const M: usize, const N: usize, F: Filtering<M, N>>(
        g: &Geometry,
        x: &Tensor,
        w: &Tensor,
        dy: &Tensor,
    ) -> Result<[Tensor; 3]> {
        let (xs, ws) = (x.flatten_all()?.to_vec1()?, w.flatten_all()?.to_vec1()?);
        let dys = dy.flatten_all()?.to_vec1()?;
        let device = Device::Cpu;
        let u = transform_kernels_by::<M, N, F>(&ws);
        let (dx, dw) = gradients_by::<M, N, F>(g, (&xs, &dys), &u, true);
        let (_, dw_alone) = gradients_by::<M, N, F>(g, (&xs, &dys), &u, false);
        assert_eq!(dw, dw_alone, "the weight's gradient without the input's");
        Ok([
            Tensor::from_vec(forward_by::<M, N, F>(g, &xs, &u), dy.shape(), &device)?,
            Tensor::from_vec(dx.expect("asked for"), x.shape(), &device)?,
            Tensor::from_vec(dw, w.shape(), &device)?,
        ])
    }

    /// [`ours`] by both algorithms where the geometry allows, named.
    fn both(
        g: &Geometry,
        x: &Tensor,
        w: &Tensor,
        dy: &Tensor,
    ) -> Result<Vec<(&'static str, [Tensor; 3])>> {
        let mut outcomes = vec![("F(2×2, 3×3)", ours::<2, 4, F2x2>(g, x, w, dy)?)];
        if Algorithm::of(g) == Algorithm::F4x4 {
            outcomes.push(("F(4×4, 3×3)", ours::<4, 6, F4x4>(g, x, w, dy)?));
        }
        Ok(outcomes)
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
            for (algorithm, parts) in both(&g, &x, &w, &t("dy"))? {
                served += 1;
                let pytorch = [t("y"), t("dx"), t("dw")];
                for ((part, ours), pytorch) in ["y", "dx", "dw"].iter().zip(&parts).zip(&pytorch) {
                    let error = relative_error(ours, pytorch);
                    assert!(
                        error < 1e-5,
                        "{} by {algorithm} {part}: {error:e} from PyTorch's",
                        case.name
                    );
                }
            }
        }
        assert_eq!(
            served, 4,
            "the fixture's 3×3 stride-1 cases, by both algorithms"
        );
        Ok(())
    }

    #[test]
    fn winograd_equals_candles_convolution_on_every_chunking() -> Result<()> {
        let device = Device::Cpu;
        // (N, C, H, W, C_out): chunks of several images and a shorter last one, one F(4×4) tile
        // per plane, one F(2×2) tile per plane, wide planes, one image (products parallel).
        for (n, c, h, w_, co) in [
            (21, 5, 8, 8, 3),
            (3, 2, 4, 4, 4),
            (3, 2, 2, 2, 4),
            (2, 3, 4, 10, 2),
            (2, 3, 4, 12, 2),
            (1, 4, 6, 6, 5),
            (1, 4, 8, 8, 5),
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
            for (algorithm, parts) in both(&g, x.as_tensor(), w.as_tensor(), &dy)? {
                for ((part, a), b) in ["y", "dx", "dw"].iter().zip(&parts).zip(&candle) {
                    let error = relative_error(a, b);
                    assert!(
                        error < 1e-5,
                        "{n}×{c}×{h}×{w_} → {co} by {algorithm} {part}: {error:e} from candle's"
                    );
                }
            }
        }
        Ok(())
    }

    /// `⟨f(eᵢ), eₒ⟩ = ⟨eᵢ, adjoint(eₒ)⟩` for every pair of unit vectors: `adjoint` is `f`'s
    /// transpose.
    fn is_transpose<const I: usize, const O: usize>(
        what: &str,
        f: impl Fn([f32; I]) -> [f32; O],
        adjoint: impl Fn([f32; O]) -> [f32; I],
    ) {
        fn unit<const L: usize>(k: usize) -> [f32; L] {
            std::array::from_fn(|e| if e == k { 1.0 } else { 0.0 })
        }
        for i in 0..I {
            for o in 0..O {
                let (forward, back) = (f(unit(i))[o], adjoint(unit(o))[i]);
                assert!(
                    (forward - back).abs() < 1e-7,
                    "{what}: coefficient ({o}, {i}) is {forward}, its adjoint's {back}"
                );
            }
        }
    }

    fn adjoints_are_transposes<const M: usize, const N: usize, F: Filtering<M, N>>(name: &str) {
        is_transpose(&format!("{name} input"), F::input_points, F::input_adjoint);
        is_transpose(
            &format!("{name} kernel"),
            F::kernel_points,
            F::kernel_adjoint,
        );
        is_transpose(
            &format!("{name} output"),
            F::output_values,
            F::output_adjoint,
        );
    }

    #[test]
    fn every_adjoint_is_its_transforms_transpose() {
        adjoints_are_transposes::<2, 4, F2x2>("F(2×2, 3×3)");
        adjoints_are_transposes::<4, 6, F4x4>("F(4×4, 3×3)");
    }
}
