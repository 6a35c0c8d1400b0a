"""Reference values for lrlab-analysis' statistics, from scipy and statsmodels.

Run by hand (pip install scipy statsmodels numpy) from the repository root:

    python crates/analysis/scripts/reference.py

It writes crates/analysis/tests/fixtures/stats_reference.json, which the Rust tests compare
against (1e-9 for the tests, looser only where the reference itself is numerical).
"""

import itertools
import json
import math
from pathlib import Path

import numpy as np
import scipy
import statsmodels
from scipy import special, stats
from statsmodels.stats.multitest import multipletests

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "stats_reference.json"
rng = np.random.default_rng(20261129)


def finite(value):
    value = float(value)
    return value if math.isfinite(value) else None


def samples():
    """Pairs (a, b): ties, equal means, n = 2..10, unequal n, accuracies and epochs."""
    cases = [
        ([0.91, 0.93, 0.92], [0.89, 0.90, 0.905]),  # the study's shape: 3 vs 3
        ([0.80, 0.82, 0.84], [0.84, 0.82, 0.80]),  # equal means, same values
        ([1.0, 2.0], [3.0, 5.0]),  # n = 2
        ([5.0, 5.0, 6.0, 7.0], [5.0, 6.0, 6.0]),  # ties across samples
        ([12.0, 12.0, 12.0], [14.0, 13.0, 12.0]),  # no spread on one side
        ([3.0, 1.0, 4.0, 1.0, 5.0], [9.0, 2.0, 6.0]),  # unequal n, ties within
        ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], [0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95, 1.05]),
    ]
    for n_a, n_b in [(3, 3), (4, 6), (7, 5), (10, 10), (2, 9), (8, 8)]:
        a = rng.normal(0.85, 0.02, n_a)
        b = rng.normal(0.84, 0.03, n_b)
        cases.append((list(np.round(a, 4)), list(np.round(b, 4))))
    for n_a, n_b in [(6, 6), (9, 7)]:  # epochs: many ties
        cases.append((list(rng.integers(5, 12, n_a).astype(float)), list(rng.integers(6, 14, n_b).astype(float))))
    return cases


def hedges(a, b):
    a, b = np.asarray(a), np.asarray(b)
    na, nb = len(a), len(b)
    df = na + nb - 2
    pooled = math.sqrt(((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / df)
    if pooled == 0:
        return None
    j = math.exp(special.gammaln(df / 2) - math.log(math.sqrt(df / 2)) - special.gammaln((df - 1) / 2))
    g = j * (a.mean() - b.mean()) / pooled
    se = math.sqrt((na + nb) / (na * nb) + g * g / (2 * (na + nb)))
    z = stats.norm.ppf(0.975)
    return {"g": g, "lo": g - z * se, "hi": g + z * se}


def bootstrap_exact(arrays, statistic):
    """The whole bootstrap distribution, by brute force over every ordered resample."""
    values, weights = [], []
    index_sets = [list(itertools.product(range(len(x)), repeat=len(x))) for x in arrays]
    total = np.prod([len(s) for s in index_sets])
    for combo in itertools.product(*index_sets):
        resampled = [np.asarray(x)[list(idx)] for x, idx in zip(arrays, combo)]
        values.append(statistic(*resampled))
        weights.append(1.0 / total)
    return np.asarray(values), np.asarray(weights)


def inverse_cdf_interval(values, weights, level=0.95):
    order = np.argsort(values, kind="stable")
    values, cumulative = values[order], np.cumsum(weights[order])
    pick = lambda p: float(values[np.searchsorted(cumulative, p - 1e-12)])
    return [pick((1 - level) / 2), pick((1 + level) / 2)]


def violation_ratio_grid(a, b, steps=200_000):
    """ε_W2 by the midpoint rule on a fine grid (the reference is numerical here)."""
    t = (np.arange(steps) + 0.5) / steps
    qa = np.sort(a)[np.minimum(np.ceil(t * len(a)).astype(int) - 1, len(a) - 1)]
    qb = np.sort(b)[np.minimum(np.ceil(t * len(b)).astype(int) - 1, len(b) - 1)]
    diff = qb - qa
    total = np.sum(diff**2)
    return 0.0 if total == 0 else float(np.sum(np.maximum(diff, 0) ** 2) / total)


def two_sample_case(a, b):
    case = {"a": a, "b": b}
    welch = stats.ttest_ind(a, b, equal_var=False)
    case["welch"] = None if not math.isfinite(welch.statistic) else {"t": float(welch.statistic), "df": float(welch.df), "p": float(welch.pvalue)}
    if len(a) == len(b):
        paired = stats.ttest_rel(a, b)
        case["paired"] = None if not math.isfinite(paired.statistic) else {"t": float(paired.statistic), "p": float(paired.pvalue)}
    # With ties, scipy's method="exact" uses the tie-free null distribution (an approximation
    # its documentation warns about); the exact test conditional on the ties is the
    # permutation distribution of U, which scipy computes with PermutationMethod().
    ties = len(set(a) | set(b)) < len(a) + len(b)
    method = stats.PermutationMethod(n_resamples=np.inf) if ties else "exact"
    mw = stats.mannwhitneyu(a, b, method=method)
    case["mann_whitney"] = {"u": float(mw.statistic), "p": float(mw.pvalue), "reference": "permutation" if ties else "exact"}
    case["hedges"] = hedges(a, b)
    case["violation_ratio"] = violation_ratio_grid(np.asarray(a), np.asarray(b))
    if len(a) <= 4 and len(b) <= 4:
        diff_values, diff_weights = bootstrap_exact([a, b], lambda x, y: x.mean() - y.mean())
        case["bootstrap_difference"] = inverse_cdf_interval(diff_values, diff_weights)
    return case


def one_sample_case(x):
    x = np.asarray(x)
    case = {"x": list(x)}
    if len(x) >= 2:
        lo, hi = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
        case["t_interval"] = [float(lo), float(hi)]
    if len(x) <= 6:
        values, weights = bootstrap_exact([x], lambda y: y.mean())
        case["bootstrap_mean"] = inverse_cdf_interval(values, weights)
    return case


def paired_cases():
    """Seed-paired samples for the paired t and the exact sign-flip test: the study's 3 pairs,
    ties, zero differences, all differences of one sign, n = 2..12."""
    cases = [
        ([0.91, 0.93, 0.92], [0.89, 0.90, 0.905]),  # 3 pairs, one sign: the floor 0.25
        ([0.80, 0.82, 0.84], [0.80, 0.81, 0.85]),  # a zero difference
        ([0.5, 0.6, 0.7, 0.8], [0.4, 0.7, 0.6, 0.9]),  # |differences| tie
        ([1.0, 2.0], [0.5, 2.5]),  # n = 2, symmetric
        ([0.9, 0.9, 0.9], [0.9, 0.9, 0.9]),  # no difference at all
        # One image of 64 better in every seed: scipy's t is inf (p = 0), lrlab's undefined.
        ([0.25, 0.5, 0.75], [0.234375, 0.484375, 0.734375]),
        ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7], [0.12, 0.19, 0.33, 0.41, 0.46, 0.63, 0.69]),
        ([12.0, 15.0, 11.0, 14.0, 13.0], [14.0, 15.0, 13.0, 13.0, 16.0]),  # epochs, ties
    ]
    for n in [3, 5, 8, 12]:
        base = rng.normal(0.85, 0.02, n)
        arm = base + rng.normal(0.004, 0.006, n)
        cases.append((list(np.round(arm, 4)), list(np.round(base, 4))))
    out = []
    for a, b in cases:
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        paired = stats.ttest_rel(a, b)
        flips = stats.permutation_test(
            (a, b), lambda x, y, axis: np.mean(x - y, axis=axis), permutation_type="samples",
            vectorized=True, n_resamples=np.inf, alternative="two-sided")
        out.append({
            "a": list(a), "b": list(b),
            "paired": None if not math.isfinite(paired.statistic) else {"t": float(paired.statistic), "p": float(paired.pvalue)},
            "sign_flip_p": float(flips.pvalue),
        })
    return out


def detectable(sd, n, alpha, power):
    return (stats.t.ppf(1 - alpha / 2, n - 1) + stats.t.ppf(power, n - 1)) * sd / math.sqrt(n)


def detectable_cases():
    """The paired t-test's detectable difference and the pairs needed for a given one."""
    out = []
    for sd, n, alpha, power in [(0.01, 3, 0.05, 0.8), (0.004, 3, 0.05 / 12, 0.8),
                                (0.02, 10, 0.01, 0.9), (1.5, 5, 0.05 / 4, 0.8)]:
        needed = {}
        for delta in (0.01, 0.005):
            needed[str(delta)] = next((m for m in range(2, 1001) if detectable(sd, m, alpha, power) <= delta), None)
        out.append({"sd": sd, "n": n, "alpha": alpha, "power": power,
                    "difference": float(detectable(sd, n, alpha, power)), "pairs_needed": needed})
    return out


def censored_cases():
    """(times, observed) pairs for log-rank and Kaplan–Meier."""
    cases = [
        (([4, 6, 5], [1, 1, 1]), ([8, 10, 10], [1, 0, 0])),
        (([3, 3, 7, 10], [1, 1, 1, 0]), ([5, 10, 10], [1, 0, 0])),
        (([2, 4, 4, 6, 9], [1, 1, 0, 1, 1]), ([3, 4, 8, 9, 9, 9], [1, 1, 1, 0, 1, 0])),
        (([12, 15, 20], [1, 1, 0]), ([20, 20, 20], [0, 0, 0])),
    ]
    out = []
    for (ta, ea), (tb, eb) in cases:
        x = stats.CensoredData.right_censored(ta, np.logical_not(ea))
        y = stats.CensoredData.right_censored(tb, np.logical_not(eb))
        result = stats.logrank(x, y)
        medians = []
        for data in (x, y):
            sf = stats.ecdf(data).sf
            below = np.nonzero(sf.probabilities <= 0.5 + 1e-12)[0]
            medians.append(float(sf.quantiles[below[0]]) if len(below) else None)
        out.append({
            "a": {"time": ta, "observed": [bool(e) for e in ea]},
            "b": {"time": tb, "observed": [bool(e) for e in eb]},
            "logrank": {"z": float(result.statistic), "p": float(result.pvalue)},
            "km_median": medians,
        })
    return out


HOLM_WITH_NAN = [0.01, float("nan"), 0.04, 0.03, float("nan"), 0.002]


def nan_null(value):
    """JSON has no NaN: a missing p is null."""
    return None if np.isnan(value) else float(value)


def main():
    pairs = samples()
    two = [two_sample_case(a, b) for a, b in pairs]
    welch_p = [c["welch"]["p"] for c in two if c["welch"] is not None]
    holm = multipletests(welch_p, method="holm")[1]
    holm_with_gap = list(rng.uniform(0, 0.2, 7))
    holm_with_gap += [holm_with_gap[2]]  # a tie
    one = [one_sample_case(x) for x in [[0.91, 0.93, 0.92], [1.0, 2.0], [3.0, 3.0, 3.0, 4.0], [0.5, 0.7, 0.2, 0.9, 0.4], list(rng.normal(0, 1, 8))]]
    paired = paired_cases()
    paired_p = [c["paired"]["p"] for c in paired if c["paired"] is not None]
    fixture = {
        "generator": f"crates/analysis/scripts/reference.py (scipy {scipy.__version__}, statsmodels {statsmodels.__version__}, numpy {np.__version__})",
        "two_sample": two,
        "holm": [
            {"p": welch_p, "adjusted": [float(v) for v in holm]},
            {"p": holm_with_gap, "adjusted": [float(v) for v in multipletests(holm_with_gap, method="holm")[1]]},
            {"p": paired_p, "adjusted": [float(v) for v in multipletests(paired_p, method="holm")[1]]},
            # Comparisons without a p (NaN: no spread) stay in the family, ranked last.
            {"p": [nan_null(v) for v in HOLM_WITH_NAN],
             "adjusted": [nan_null(v) for v in multipletests(HOLM_WITH_NAN, method="holm")[1]]},
        ],
        "paired": paired,
        "one_sample": one,
        "censored": censored_cases(),
        "detectable_difference": detectable_cases(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
