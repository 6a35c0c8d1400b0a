//! A convolution whose gradients are convolutions too, for devices without lrlab's fused CPU
//! kernel: candle's own backward pass takes the input gradient through `conv_transpose2d`,
//! which on CUDA is a direct kernel (one thread per input element, summing over
//! `C_out × k × k` with strided reads), not a product. Here both gradients are stride-1 or
//! dilated convolutions, which candle runs as im2col and one matrix product (cuBLAS on a GPU):
//!
//! - `∂x = conv(pad(dilate(∂y, s), k − 1 − p), flip(w)ᵀ)`: the output gradient with `s − 1`
//!   zeros between its elements, padded by `k − 1 − p` (plus the rows and columns a strided
//!   convolution dropped at the end), convolved at stride 1 with the kernel flipped in space
//!   and its channel axes swapped;
//! - `∂w = conv(xᵀ, ∂yᵀ)` at dilation `s` and padding `p`, batch and channels swapped on both,
//!   cut to `k × k`.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::conv::ConvParams;

/// `x (N, C, H, W)` convolved with `weight (C_out, C, k, k)` (undilated, one group) by
/// candle's convolution, with both gradients computed as convolutions (see the module's
/// documentation). Any device, any float type.
pub(crate) fn conv2d_with_product_gradients(
    x: &Tensor,
    weight: &Tensor,
    params: ConvParams,
) -> Result<Tensor> {
    let ConvParams {
        padding, stride, ..
    } = params;
    let y = x.detach().conv2d(&weight.detach(), padding, stride, 1, 1)?;
    x.apply_op3(weight, &y, ProductGradients(params))
}

/// The gradients of a convolution as convolutions; its forward pass passes on the output the
/// caller computed.
struct ProductGradients(ConvParams);

/// `storage` under `layout` as a new storage of the same elements.
fn passed_on<S: BackendStorage>(storage: &S, layout: &Layout) -> Result<(S, Shape)> {
    if !layout.is_contiguous() || layout.start_offset() != 0 {
        candle_core::bail!("convolution: the output must be a fresh contiguous tensor");
    }
    Ok((storage.try_clone(layout)?, layout.shape().clone()))
}

impl CustomOp3 for ProductGradients {
    fn name(&self) -> &'static str {
        "lrlab-conv2d-product-gradients"
    }

    fn cpu_fwd(
        &self,
        _x: &CpuStorage,
        _xl: &Layout,
        _w: &CpuStorage,
        _wl: &Layout,
        y: &CpuStorage,
        yl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        passed_on(y, yl)
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        _x: &candle_core::CudaStorage,
        _xl: &Layout,
        _w: &candle_core::CudaStorage,
        _wl: &Layout,
        y: &candle_core::CudaStorage,
        yl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        passed_on(y, yl)
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _y: &Tensor,
        _out: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let dx = match x.track_op() {
            true => Some(input_gradient(&dy, weight, x.dims4()?, self.0)?),
            false => None,
        };
        let dw = weight_gradient(x, &dy, weight.dim(2)?, self.0)?;
        Ok((dx, Some(dw), None))
    }
}

/// `∂x` of shape `x_dims` from the output's gradient and the weight.
fn input_gradient(
    dy: &Tensor,
    weight: &Tensor,
    x_dims: (usize, usize, usize, usize),
    params: ConvParams,
) -> Result<Tensor> {
    let (_, _, height, width) = x_dims;
    let kernel = weight.dim(2)?;
    let (stride, padding) = (params.stride, params.padding);
    let dilated = dilate(dy, stride)?;
    // Rows and columns a strided convolution dropped at the end receive no gradient.
    let dropped = |size: usize| (size + 2 * padding - kernel) % stride;
    let edge = kernel as isize - 1 - padding as isize;
    let padded = pad_or_crop(&dilated, 2, edge, edge + dropped(height) as isize)?;
    let padded = pad_or_crop(&padded, 3, edge, edge + dropped(width) as isize)?;
    let flipped = flip(&flip(weight, 2)?, 3)?.transpose(0, 1)?.contiguous()?;
    padded.contiguous()?.conv2d(&flipped, 0, 1, 1, 1)
}

/// `∂w (C_out, C, k, k)` from the input and the output's gradient.
fn weight_gradient(x: &Tensor, dy: &Tensor, kernel: usize, params: ConvParams) -> Result<Tensor> {
    let xt = x.transpose(0, 1)?.contiguous()?;
    let dyt = dy.transpose(0, 1)?.contiguous()?;
    // (C, C_out, ≥ k, ≥ k): the rows beyond k pair taps with outputs the convolution dropped.
    let full = xt.conv2d(&dyt, params.padding, 1, params.stride, 1)?;
    full.narrow(2, 0, kernel)?
        .narrow(3, 0, kernel)?
        .transpose(0, 1)?
        .contiguous()
}

/// `t (N, C, H, W)` with `s − 1` zeros between neighbouring elements of each plane.
fn dilate(t: &Tensor, s: usize) -> Result<Tensor> {
    if s == 1 {
        return Ok(t.clone());
    }
    let (n, c, h, w) = t.dims4()?;
    t.reshape((n, c, h, 1, w, 1))?
        .pad_with_zeros(3, 0, s - 1)?
        .pad_with_zeros(5, 0, s - 1)?
        .reshape((n, c, h * s, w * s))?
        .narrow(2, 0, (h - 1) * s + 1)?
        .narrow(3, 0, (w - 1) * s + 1)
}

/// `t` with `before` zeros added at the start of `dim` and `after` at its end; a negative count
/// removes that many elements instead.
fn pad_or_crop(t: &Tensor, dim: usize, before: isize, after: isize) -> Result<Tensor> {
    let size = t.dim(dim)?;
    let (cut_start, cut_end) = (before.min(0).unsigned_abs(), after.min(0).unsigned_abs());
    let t = t.narrow(dim, cut_start, size - cut_start - cut_end)?;
    t.pad_with_zeros(dim, before.max(0) as usize, after.max(0) as usize)
}

/// `t` reversed along `dim`.
fn flip(t: &Tensor, dim: usize) -> Result<Tensor> {
    let size = t.dim(dim)?;
    let reversed: Vec<u32> = (0..size as u32).rev().collect();
    let index = Tensor::from_vec(reversed, size, t.device())?;
    t.index_select(&index, dim)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::relative_error;
    use candle_core::{DType, Device, Var};

    /// One of PyTorch's convolutions: its settings, and its tensors by name (`x`, `w`, `dy`,
    /// `y`, `dx`, `dw`).
    pub(crate) struct Case {
        pub name: String,
        pub params: ConvParams,
        pub tensors: std::collections::HashMap<String, Tensor>,
    }

    /// PyTorch's cases (`scripts/conv_reference.py`).
    pub(crate) fn cases() -> Vec<Case> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/conv_reference.safetensors"
        );
        let all = candle_core::safetensors::load(path, &Device::Cpu).expect("the fixture");
        let mut names: Vec<String> = all
            .keys()
            .filter_map(|k| k.strip_suffix(".geometry").map(str::to_owned))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|name| {
                let geometry = all[&format!("{name}.geometry")].to_vec1::<i64>().unwrap();
                let tensors = ["x", "w", "dy", "y", "dx", "dw"]
                    .into_iter()
                    .map(|k| (k.to_owned(), all[&format!("{name}.{k}")].clone()))
                    .collect();
                Case {
                    name,
                    params: ConvParams {
                        stride: geometry[0] as usize,
                        padding: geometry[1] as usize,
                        ..ConvParams::default()
                    },
                    tensors,
                }
            })
            .collect()
    }

    /// Output, input gradient and weight gradient of `conv` on `x`, `w` for output gradient
    /// `dy`, in `dtype`, returned in `f32`.
    fn run(
        case: &Case,
        dtype: DType,
        conv: impl Fn(&Tensor, &Tensor) -> Result<Tensor>,
    ) -> Result<[Tensor; 3]> {
        let t = |k: &str| case.tensors[k].to_dtype(dtype);
        let (x, w) = (Var::from_tensor(&t("x")?)?, Var::from_tensor(&t("w")?)?);
        let y = conv(x.as_tensor(), w.as_tensor())?;
        let grads = (&y * &t("dy")?)?.sum_all()?.backward()?;
        let f32 = |t: &Tensor| t.to_dtype(DType::F32);
        Ok([
            f32(&y)?,
            f32(grads.get(&x).expect("∂x"))?,
            f32(grads.get(&w).expect("∂w"))?,
        ])
    }

    #[test]
    fn gradients_as_products_equal_pytorchs_and_candles_conv_transpose() -> Result<()> {
        let cases = cases();
        assert_eq!(cases.len(), 6, "the fixture's cases");
        for case in &cases {
            let ConvParams {
                stride, padding, ..
            } = case.params;
            // candle's CPU product has no bf16; f16 stands in for a reduced precision here, and
            // `tests/cuda.rs` of lrlab-models runs the networks through this path in bf16 on a GPU.
            for dtype in [DType::F32, DType::F64, DType::F16] {
                let ours = run(case, dtype, |x, w| {
                    conv2d_with_product_gradients(x, w, case.params)
                })?;
                // candle's backward pass: the input gradient through `conv_transpose2d`.
                let candle = run(case, dtype, |x, w| x.conv2d(w, padding, stride, 1, 1))?;
                // PyTorch's values are f64 stored in f32: f32 rounding either way; f16 rounds the
                // operands and each product's output to 11 bits.
                let tolerance = if dtype == DType::F16 { 5e-3 } else { 1e-5 };
                for (i, part) in ["output", "input gradient", "weight gradient"]
                    .iter()
                    .enumerate()
                {
                    let pytorch = &case.tensors[["y", "dx", "dw"][i]];
                    let what = format!("{} {dtype:?} {part}", case.name);
                    let error = relative_error(&ours[i], pytorch);
                    assert!(error < tolerance, "{what}: {error:e} from PyTorch's");
                    let error = relative_error(&ours[i], &candle[i]);
                    assert!(error < tolerance, "{what}: {error:e} from candle's");
                }
            }
        }
        Ok(())
    }
}
