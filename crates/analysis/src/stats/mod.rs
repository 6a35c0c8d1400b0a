//! The statistics of the comparisons, each matching its reference (scipy, statsmodels) to
//! 1e-9 where one exists; distributions from statrs.

mod rank;
mod resample;
mod survival;

pub use rank::{MannWhitney, MwMethod, mann_whitney};
pub use resample::{Resampler, aso_eps_min, multiset_count, violation_ratio};
pub use survival::{Censored, LogRank, kaplan_meier_median, log_rank};

use std::cell::RefCell;
use std::collections::HashMap;

use statrs::distribution::{ContinuousCDF, Normal, StudentsT};
use statrs::function::{beta::beta_reg, gamma::ln_gamma};

/// Whether a spread is usable: positive and finite (not zero, NaN or infinite).
fn positive(value: f64) -> bool {
    value > 0.0 && value.is_finite()
}

/// The sample mean.
pub fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// The sample variance (n − 1 in the denominator), two-pass as numpy computes it.
pub fn variance(values: &[f64]) -> f64 {
    let m = mean(values);
    values.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (values.len() as f64 - 1.0)
}

/// Two-sided p-value of Student's t with `df` degrees of freedom, computed as the
/// regularised incomplete beta function so that tiny p-values keep their digits.
pub fn t_two_sided_p(t: f64, df: f64) -> f64 {
    beta_reg(df / 2.0, 0.5, df / (df + t * t))
}

/// The `p` quantile of Student's t with `df` degrees of freedom. A study asks for the same
/// few quantiles thousands of times and each is an iterative inversion: they are remembered
/// per thread.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    thread_local! {
        static KNOWN: RefCell<HashMap<(u64, u64), f64>> = RefCell::new(HashMap::new());
    }
    KNOWN.with_borrow_mut(|known| {
        *known.entry((p.to_bits(), df.to_bits())).or_insert_with(|| {
            StudentsT::new(0.0, 1.0, df)
                .expect("positive degrees of freedom")
                .inverse_cdf(p)
        })
    })
}

/// The `p` quantile of the standard normal.
pub fn z_quantile(p: f64) -> f64 {
    Normal::standard().inverse_cdf(p)
}

/// A t statistic, its degrees of freedom and two-sided p-value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TTest {
    /// The statistic (first sample minus second).
    pub t: f64,
    /// Degrees of freedom.
    pub df: f64,
    /// Two-sided p-value.
    pub p: f64,
}

fn t_test(difference: f64, standard_error: f64, df: f64) -> Option<TTest> {
    if !positive(standard_error) {
        return None;
    }
    let t = difference / standard_error;
    Some(TTest {
        t,
        df,
        p: t_two_sided_p(t, df),
    })
}

/// Welch's unequal-variance t-test of `a − b` (scipy's `ttest_ind(a, b, equal_var=False)`);
/// `None` with fewer than 2 values on a side or no variance on either.
pub fn welch(a: &[f64], b: &[f64]) -> Option<TTest> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let (ea, eb) = (variance(a) / a.len() as f64, variance(b) / b.len() as f64);
    let df =
        (ea + eb).powi(2) / (ea * ea / (a.len() as f64 - 1.0) + eb * eb / (b.len() as f64 - 1.0));
    t_test(mean(a) - mean(b), (ea + eb).sqrt(), df)
}

/// The paired t-test of `a − b` over pairs (scipy's `ttest_rel(a, b)`); `None` with fewer
/// than 2 pairs or identical differences.
pub fn paired(a: &[f64], b: &[f64]) -> Option<TTest> {
    assert_eq!(a.len(), b.len(), "paired samples");
    if a.len() < 2 {
        return None;
    }
    let differences: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let n = differences.len() as f64;
    t_test(
        mean(&differences),
        (variance(&differences) / n).sqrt(),
        n - 1.0,
    )
}

/// Hedges' g of `a − b` with its approximate 95% interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hedges {
    /// The bias-corrected standardised mean difference.
    pub g: f64,
    /// The interval's lower end.
    pub lo: f64,
    /// Its upper end.
    pub hi: f64,
}

/// Hedges' g: Cohen's d on the pooled standard deviation times the exact small-sample
/// correction J(ν) = Γ(ν/2) / (√(ν/2) Γ((ν−1)/2)), ν = n_a + n_b − 2 (Hedges 1981); its
/// interval is g ± z₀.₉₇₅·SE with SE² = (n_a+n_b)/(n_a n_b) + g²/(2(n_a+n_b)) (Hedges & Olkin
/// 1985), a large-sample approximation that is optimistic at n = 3. `None` with fewer than 2
/// values on a side or no spread.
pub fn hedges_g(a: &[f64], b: &[f64], level: f64) -> Option<Hedges> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let df = na + nb - 2.0;
    let pooled = (((na - 1.0) * variance(a) + (nb - 1.0) * variance(b)) / df).sqrt();
    if !positive(pooled) {
        return None;
    }
    let correction =
        (ln_gamma(df / 2.0) - (df / 2.0).sqrt().ln() - ln_gamma((df - 1.0) / 2.0)).exp();
    let g = correction * (mean(a) - mean(b)) / pooled;
    let se = ((na + nb) / (na * nb) + g * g / (2.0 * (na + nb))).sqrt();
    let z = z_quantile(0.5 + level / 2.0);
    Some(Hedges {
        g,
        lo: g - z * se,
        hi: g + z * se,
    })
}

/// Holm–Bonferroni adjusted p-values (statsmodels' `multipletests(p, method="holm")`), in the
/// order given. A `None` entry (a comparison without a test) stays `None` but still counts in
/// the family, ranked after every p — as statsmodels ranks a NaN — so a pre-registered family
/// is never made smaller by its untestable members.
pub fn holm(p_values: &[Option<f64>]) -> Vec<Option<f64>> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).filter(|&i| p_values[i].is_some()).collect();
    order.sort_by(|&i, &j| p_values[i].unwrap().total_cmp(&p_values[j].unwrap()));
    let mut adjusted = vec![None; p_values.len()];
    let mut running = 0.0f64;
    for (rank, &i) in order.iter().enumerate() {
        let scaled = ((m - rank) as f64 * p_values[i].unwrap()).min(1.0);
        running = running.max(scaled);
        adjusted[i] = Some(running);
    }
    adjusted
}

/// Mean, spread and a t-interval of one sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Describe {
    /// Values.
    pub n: usize,
    /// Their mean.
    pub mean: f64,
    /// Their standard deviation (n − 1); `None` below 2 values.
    pub sd: Option<f64>,
    /// The t-interval of the mean at the requested level; `None` below 2 values.
    pub t_interval: Option<(f64, f64)>,
}

/// Describes a non-empty sample.
pub fn describe(values: &[f64], level: f64) -> Describe {
    let n = values.len();
    let m = mean(values);
    let sd = (n >= 2).then(|| variance(values).sqrt());
    let t_interval = sd.map(|sd| {
        let half = t_quantile(0.5 + level / 2.0, n as f64 - 1.0) * sd / (n as f64).sqrt();
        (m - half, m + half)
    });
    Describe {
        n,
        mean: m,
        sd,
        t_interval,
    }
}

/// The exact sign-flip permutation test of paired differences `a − b`, two-sided.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SignFlip {
    /// The p-value: the share of the 2ⁿ sign assignments whose mean difference is at least as
    /// extreme as the observed one, counted as scipy's `permutation_test` counts it
    /// (`permutation_type="samples"`, two-sided: twice the smaller tail, at most 1; values
    /// within a relative 100 ε of the observed one count as equal).
    pub p: f64,
    /// The smallest p the test can give with these pairs: 2 / 2ⁿ (0.25 with 3 pairs).
    pub min_p: f64,
}

/// The most pairs whose 2ⁿ sign assignments are enumerated.
pub const SIGN_FLIP_MAX_PAIRS: usize = 20;

/// The exact sign-flip test of the pairs `(a[i], b[i])`: distribution-free, it asks only that a
/// pair's difference be as likely positive as negative under no difference. `None` without pairs
/// or with more than [`SIGN_FLIP_MAX_PAIRS`].
pub fn sign_flip(a: &[f64], b: &[f64]) -> Option<SignFlip> {
    assert_eq!(a.len(), b.len(), "paired samples");
    let n = a.len();
    if n == 0 || n > SIGN_FLIP_MAX_PAIRS {
        return None;
    }
    let differences: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let observed = mean(&differences);
    // scipy's tolerance for values equal in theory but not in floating point.
    let gamma = (observed * 100.0 * f64::EPSILON).abs();
    let total = 1u64 << n;
    let (mut greater, mut less) = (0u64, 0u64);
    let mut flipped = vec![0.0; n];
    for signs in 0..total {
        for (i, (d, f)) in differences.iter().zip(&mut flipped).enumerate() {
            *f = if signs >> i & 1 == 1 { -d } else { *d };
        }
        let statistic = mean(&flipped);
        greater += u64::from(statistic >= observed - gamma);
        less += u64::from(statistic <= observed + gamma);
    }
    let tail = greater.min(less) as f64 / total as f64;
    Some(SignFlip {
        p: (2.0 * tail).min(1.0),
        min_p: 2.0 / total as f64,
    })
}

/// The smallest true mean difference (in the metric's units) that a two-sided paired t-test at
/// level `alpha` detects with probability `power`, from `n` pairs whose differences have
/// standard deviation `sd`: (t₁₋α/₂ + t_power) · sd / √n on n − 1 degrees of freedom. `None`
/// below 2 pairs or without a finite spread.
pub fn detectable_difference(sd: f64, n: usize, alpha: f64, power: f64) -> Option<f64> {
    if n < 2 || !sd.is_finite() || sd < 0.0 {
        return None;
    }
    let df = (n - 1) as f64;
    Some((t_quantile(1.0 - alpha / 2.0, df) + t_quantile(power, df)) * sd / (n as f64).sqrt())
}

/// The fewest pairs (at most `most`) with which [`detectable_difference`] falls to `delta` or
/// below, given the spread `sd` of the differences; `None` if `most` pairs do not suffice.
pub fn pairs_needed(sd: f64, delta: f64, alpha: f64, power: f64, most: usize) -> Option<usize> {
    let enough = |n: usize| detectable_difference(sd, n, alpha, power).is_some_and(|d| d <= delta);
    if most < 2 || !enough(most) {
        return None;
    }
    // The detectable difference falls as pairs are added: bisect for the first n enough.
    let (mut low, mut high) = (1, most);
    while high - low > 1 {
        let middle = (low + high) / 2;
        match enough(middle) {
            true => high = middle,
            false => low = middle,
        }
    }
    Some(high)
}
