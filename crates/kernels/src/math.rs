//! Elementary functions written so that the compiler vectorises the loops that call them:
//! libm's `expf` and `erff` are a function call per element, and a single running sum is one
//! long chain of dependent additions. Each is deterministic: the same inputs give the same bits
//! on every run and thread count.

/// Interleaved partial sums: one running total waits out an addition's latency per term;
/// `LANES` totals over every `LANES`-th term, added in a fixed order at the end, do not, and
/// give the same sum every run.
const LANES: usize = 8;

/// `Σᵢ term([inputs[0][i], …, inputs[S − 1][i]])` over the elements of the `S` equally long
/// `inputs`, in [`LANES`] interleaved partial sums: the lanes of a block of [`LANES`] elements
/// are independent, so the loop vectorises. One sum per call: two sums of the same elements
/// in one loop vectorise across the pair instead of across the lanes, at half the width.
pub(crate) fn lane_sum<const S: usize>(inputs: [&[f32]; S], term: impl Fn([f32; S]) -> f32) -> f32 {
    let len = inputs.first().map_or(0, |x| x.len());
    assert!(
        inputs.iter().all(|x| x.len() == len),
        "lane sums of unequal inputs"
    );
    let full = len - len % LANES;
    let mut lanes = [0f32; LANES];
    for base in (0..full).step_by(LANES) {
        let blocks: [&[f32; LANES]; S] =
            inputs.map(|x| x[base..base + LANES].try_into().expect("a block of LANES"));
        for (lane, sum) in lanes.iter_mut().enumerate() {
            *sum += term(blocks.map(|block| block[lane]));
        }
    }
    let sum = lanes.into_iter().fold(0.0, |total, lane| total + lane);
    (full..len).fold(sum, |total, i| total + term(inputs.map(|x| x[i])))
}

/// `eˣ` within two units in the last place over `f32`'s normal range: `2ⁿ · eʳ` with
/// `n = round(x / ln 2)`, `|r| ≤ ln 2 / 2` (ln 2 split in two parts, as in Cephes), and `eʳ` by
/// Cephes' polynomial. Results below the smallest normal `f32` are 0, above the largest
/// infinity; NaN stays NaN.
#[inline]
pub(crate) fn exp(x: f32) -> f32 {
    /// Adding `1.5 · 2²³` rounds an `f32` of magnitude below 2²² to an integer, which the sum's
    /// low bits hold.
    const ROUND: f32 = 12_582_912.0;
    /// `ln` of the smallest normal `f32`.
    const LOW: f32 = -87.336_55;
    /// `ln` of the largest `f32`.
    const HIGH: f32 = 88.722_84;
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    let clamped = x.clamp(LOW, HIGH); // NaN stays NaN
    let rounded = clamped * std::f32::consts::LOG2_E + ROUND;
    let n = rounded - ROUND;
    let r = clamped - n * LN2_HIGH - n * LN2_LOW;
    let p = ((((1.987_569_2e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 0.166_666_65)
        * r
        + 0.5;
    let e_r = p * r * r + r + 1.0;
    // n ∈ [−126, 128]: 2ⁿ as two normal powers of two, 2^⌊n/2⌋ · 2^⌈n/2⌉. The integer
    // arithmetic wraps (it cannot overflow here), so that overflow checks do not keep the loop
    // from vectorising in a build with debug assertions.
    let n = rounded.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let power = |k: i32| f32::from_bits((k.wrapping_add(127) as u32) << 23);
    let y = e_r * power(n >> 1) * power(n.wrapping_sub(n >> 1));
    if x < LOW {
        0.0
    } else if x > HIGH {
        f32::INFINITY
    } else {
        y
    }
}

/// `(erf(x), e^(−x²))`: `erf(x)` within 7 · 10⁻⁷ by Abramowitz and Stegun's 7.1.26,
/// `1 − (a₁t + … + a₅t⁵) e^(−x²)` with `t = 1/(1 + p|x|)`, the approximation PyTorch's
/// vectorised CPU kernels use, and the Gaussian factor it computes on the way, which GELU's
/// slope needs too. The formula is within 1.5 · 10⁻⁷; the rest is `f32` rounding where
/// `1 − …` cancels, near 0.
#[inline]
pub(crate) fn erf_and_gaussian(x: f32) -> (f32, f32) {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_7,
        -1.453_152,
        1.061_405_4,
    ];
    let a = x.abs();
    let t = 1.0 / (1.0 + P * a);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    let gaussian = exp(-a * a);
    ((1.0 - poly * gaussian).copysign(x), gaussian)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every 97th `f32` bit pattern from the negative to the positive limit of `range`.
    fn floats_in(low: f32, high: f32) -> impl Iterator<Item = f32> {
        (0..u32::MAX)
            .step_by(97)
            .map(f32::from_bits)
            .filter(move |x| (low..=high).contains(x))
    }

    #[test]
    fn exp_is_within_two_ulp_of_the_exact_value() {
        let mut worst = 0f64;
        for x in floats_in(-87.3, 88.7) {
            let exact = f64::from(x).exp();
            let ulp = f64::from((exact as f32).next_up()) - exact as f32 as f64;
            worst = worst.max((f64::from(exp(x)) - exact).abs() / ulp.abs());
        }
        assert!(worst <= 2.0, "{worst} ulp");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(89.0), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn erf_is_within_its_bound_of_the_exact_value() {
        let erf = |x| erf_and_gaussian(x).0;
        let (mut worst, mut worst_gaussian) = (0f64, 0f64);
        for x in floats_in(-10.0, 10.0) {
            let (value, gaussian) = erf_and_gaussian(x);
            let x = f64::from(x);
            worst = worst.max((f64::from(value) - libm::erf(x)).abs());
            worst_gaussian = worst_gaussian.max((f64::from(gaussian) - (-x * x).exp()).abs());
        }
        assert!(worst < 7e-7, "{worst:e}");
        assert!(worst_gaussian < 1e-6, "{worst_gaussian:e}");
        assert_eq!(erf(30.0), 1.0);
        assert_eq!(erf(-30.0), -1.0);
        assert!(erf(f32::NAN).is_nan());
    }

    #[test]
    fn lane_sum_adds_every_term() {
        let x: Vec<f32> = (1..=21).map(|i| i as f32).collect();
        assert_eq!(lane_sum([&x], |[a]| a), 231.0);
        assert_eq!(lane_sum([&x, &x], |[a, b]| a * b), 3311.0);
        assert_eq!(lane_sum([&x[..5]], |[a]| a), 15.0, "no full block");
    }
}
