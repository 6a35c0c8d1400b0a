#!/usr/bin/env python3
"""Record learning-rate traces of PyTorch's schedulers, and of transformers' GreedyLR, as the
parity fixture of lrlab-schedulers.

Run by hand when the grid, PyTorch or transformers changes (CI needs no Python):

    pip install torch transformers
    python3 crates/schedulers/scripts/pytorch_traces.py

It writes crates/schedulers/tests/fixtures/pytorch_traces.json: one case per scheduler and
parameter set, each with the lrlab configuration (the same keys as a `[scheduler]` table), the
base learning rate, the metric fed at each tick (metric-driven schedules), and `lrs[i]`, the
optimizer's learning rate after `i` calls of `scheduler.step()`.
"""

import itertools
import json
import math
import pathlib
import random
import warnings

import torch
from torch.optim import SGD
from torch.optim import lr_scheduler as S
import transformers
from transformers.optimization import GreedyLR

warnings.filterwarnings("ignore")  # step-before-optimizer warnings: no optimizer step is taken
OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "pytorch_traces.json"


def optimizer(base_lr):
    return SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)


def lr_of(opt):
    return float(opt.param_groups[0]["lr"])


def trace(make, base_lr, ticks, metrics=None):
    """lrs[i] = the learning rate after i steps; `make(opt)` builds the scheduler."""
    opt = optimizer(base_lr)
    sched = make(opt)
    lrs = [lr_of(opt)]
    for i in range(ticks):
        if metrics is None:
            sched.step()
        else:
            sched.step(metrics[i])
        lrs.append(lr_of(opt))
    return lrs


def metric_json(v):
    return v if math.isfinite(v) else str(v)  # "nan", "inf", "-inf"


cases = []


def case(name, config, base_lr, lrs, metrics=None, run=None):
    entry = {"name": name, "config": config, "base_lr": base_lr, "lrs": lrs}
    if run is not None:
        entry["run"] = {"epochs": run[0], "steps_per_epoch": run[1]}
    if metrics is not None:
        entry["metrics"] = [metric_json(m) for m in metrics[: len(lrs) - 1]]
    cases.append(entry)


# Where lrlab's default differs from PyTorch's (constant), or PyTorch has no default, every
# parameter is spelled out; elsewhere some are left to the default to check the defaults too.
BASES = [1e-3, 0.1]

for base, factor, total in itertools.product(BASES, [1.0, 0.5, 1 / 3], [0, 3, 5]):
    case(f"constant f={factor:.3g} n={total} lr={base}",
         {"kind": "constant", "factor": factor, "total_iters": total}, base,
         trace(lambda o: S.ConstantLR(o, factor=factor, total_iters=total), base, 12))

for base, size, gamma in itertools.product(BASES, [1, 3, 7], [0.1, 0.5, 0.9]):
    case(f"step size={size} gamma={gamma} lr={base}",
         {"kind": "step", "step_size": size, "gamma": gamma}, base,
         trace(lambda o: S.StepLR(o, step_size=size, gamma=gamma), base, 30))
case("step default gamma", {"kind": "step", "step_size": 2}, 0.05,
     trace(lambda o: S.StepLR(o, step_size=2), 0.05, 10))

for base, ms, gamma in itertools.product(BASES, [[2, 5, 9], [1], [10, 20, 25]], [0.1, 0.7]):
    case(f"multistep {ms} gamma={gamma} lr={base}",
         {"kind": "multistep", "milestones": ms, "gamma": gamma}, base,
         trace(lambda o: S.MultiStepLR(o, milestones=ms, gamma=gamma), base, 30))

for base, gamma in itertools.product(BASES, [0.9, 0.99, 0.5]):
    case(f"exponential gamma={gamma} lr={base}", {"kind": "exponential", "gamma": gamma}, base,
         trace(lambda o: S.ExponentialLR(o, gamma=gamma), base, 50))

for base, t_max, eta_min in itertools.product(BASES, [1, 2, 5, 10, 50], [0.0, 1e-5, 5e-4]):
    case(f"cosine t_max={t_max} eta_min={eta_min} lr={base}",
         {"kind": "cosine", "t_max": t_max, "eta_min": eta_min}, base,
         trace(lambda o: S.CosineAnnealingLR(o, T_max=t_max, eta_min=eta_min), base,
               min(3 * t_max + 3, 160)))
# A long per-step cosine, where PyTorch's recursion and the closed form drift apart.
case("cosine t_max=3000 (per step)", {"kind": "cosine", "t_max": 3000}, 1e-3,
     trace(lambda o: S.CosineAnnealingLR(o, T_max=3000), 1e-3, 3000))

for base, t0, mult, eta_min in itertools.product(BASES, [1, 3, 10], [1, 2, 3], [0.0, 1e-4]):
    case(f"cosine_warm_restarts t_0={t0} t_mult={mult} eta_min={eta_min} lr={base}",
         {"kind": "cosine_warm_restarts", "t_0": t0, "t_mult": mult, "eta_min": eta_min}, base,
         trace(lambda o: S.CosineAnnealingWarmRestarts(o, T_0=t0, T_mult=mult, eta_min=eta_min),
               base, 60))

for max_lr, total, pct, anneal, three, div, final_div in itertools.product(
        [0.01, 1.0], [10, 100, 1000], [0.3, 0.25, 0.5, 0.0], ["cos", "linear"], [False, True],
        [25.0, 10.0], [1e4, 100.0]):
    if (total == 1000) and (div, final_div, max_lr, pct) != (25.0, 1e4, 0.01, 0.3):
        continue  # long cycles once, the parameter grid on short ones
    if (total == 100) and (div, final_div) != (25.0, 1e4):
        continue
    config = {"kind": "one_cycle", "max_lr": max_lr, "total_steps": total, "pct_start": pct,
              "anneal_strategy": anneal, "three_phase": three, "div_factor": div,
              "final_div_factor": final_div}
    make = lambda o: S.OneCycleLR(o, max_lr=max_lr, total_steps=total, pct_start=pct,
                                  anneal_strategy=anneal, three_phase=three, div_factor=div,
                                  final_div_factor=final_div, cycle_momentum=False)
    try:
        # The rates of the cycle's steps 0 … total−1; PyTorch's one tick beyond is never used
        # by a step (it extrapolates below min_lr there) and lrlab holds min_lr instead.
        lrs = trace(make, 0.123, total - 1)
    except ZeroDivisionError:
        continue  # a phase of zero length: PyTorch fails, lrlab rejects the configuration
    case(f"one_cycle max={max_lr} n={total} pct={pct} {anneal} three={three} div={div}/{final_div}",
         config, 0.123, lrs)

for base, start, end, total in itertools.product(BASES, [1 / 3, 0.1, 1.0], [1.0, 0.5, 0.0],
                                                 [0, 1, 5, 20]):
    case(f"linear start={start:.3g} end={end} n={total} lr={base}",
         {"kind": "linear", "start_factor": start, "end_factor": end, "total_iters": total}, base,
         trace(lambda o: S.LinearLR(o, start_factor=start, end_factor=end, total_iters=total),
               base, 30))
case("linear defaults", {"kind": "linear"}, 0.01, trace(lambda o: S.LinearLR(o), 0.01, 10))

for base, total, power in itertools.product(BASES, [1, 5, 30], [1.0, 2.0, 0.5]):
    case(f"polynomial n={total} power={power} lr={base}",
         {"kind": "polynomial", "total_iters": total, "power": power}, base,
         trace(lambda o: S.PolynomialLR(o, total_iters=total, power=power), base, 40))

# SequentialLR: each entry is (lrlab configs, PyTorch constructors, milestones).
SEQUENCES = [
    ([{"kind": "linear", "start_factor": 0.1, "end_factor": 1.0, "total_iters": 5},
      {"kind": "cosine", "t_max": 20, "eta_min": 0.0}],
     [lambda o: S.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=5),
      lambda o: S.CosineAnnealingLR(o, T_max=20)], [5]),
    ([{"kind": "constant", "factor": 0.5, "total_iters": 3}, {"kind": "exponential", "gamma": 0.9}],
     [lambda o: S.ConstantLR(o, factor=0.5, total_iters=3), lambda o: S.ExponentialLR(o, gamma=0.9)],
     [3]),
    ([{"kind": "step", "step_size": 2, "gamma": 0.5}, {"kind": "multistep", "milestones": [3, 6], "gamma": 0.1},
      {"kind": "cosine_warm_restarts", "t_0": 4, "t_mult": 1, "eta_min": 0.0}],
     [lambda o: S.StepLR(o, step_size=2, gamma=0.5),
      lambda o: S.MultiStepLR(o, milestones=[3, 6], gamma=0.1),
      lambda o: S.CosineAnnealingWarmRestarts(o, T_0=4)], [4, 12]),
    ([{"kind": "linear", "start_factor": 0.25, "end_factor": 1.0, "total_iters": 4},
      {"kind": "polynomial", "total_iters": 10, "power": 2.0}],
     [lambda o: S.LinearLR(o, start_factor=0.25, total_iters=4),
      lambda o: S.PolynomialLR(o, total_iters=10, power=2.0)], [4]),
    ([{"kind": "exponential", "gamma": 0.8}, {"kind": "step", "step_size": 3, "gamma": 0.5},
      {"kind": "linear", "start_factor": 0.5, "end_factor": 1.0, "total_iters": 3}],
     [lambda o: S.ExponentialLR(o, gamma=0.8), lambda o: S.StepLR(o, step_size=3, gamma=0.5),
      lambda o: S.LinearLR(o, start_factor=0.5, total_iters=3)], [2, 9]),
]
for base, (configs, makers, milestones) in itertools.product(BASES, SEQUENCES):
    make = lambda o: S.SequentialLR(o, [m(o) for m in makers], milestones=milestones)
    case(f"sequential {[c['kind'] for c in configs]} at {milestones} lr={base}",
         {"kind": "sequential", "schedulers": configs, "milestones": milestones}, base,
         trace(make, base, 30))

# warmup = SequentialLR([LinearLR(start_factor, 1.0, W), inner], milestones=[W]).
WARMED = [
    ({"kind": "cosine", "t_max": 15, "eta_min": 1e-6}, lambda o: S.CosineAnnealingLR(o, T_max=15, eta_min=1e-6)),
    ({"kind": "step", "step_size": 4, "gamma": 0.5}, lambda o: S.StepLR(o, step_size=4, gamma=0.5)),
    ({"kind": "exponential", "gamma": 0.95}, lambda o: S.ExponentialLR(o, gamma=0.95)),
]
for base, start, warm, (inner, make_inner) in itertools.product(BASES, [1 / 3, 0.1, 0.5], [1, 3, 5], WARMED):
    make = lambda o: S.SequentialLR(
        o, [S.LinearLR(o, start_factor=start, end_factor=1.0, total_iters=warm), make_inner(o)],
        milestones=[warm])
    case(f"warmup {warm} epochs from {start:.3g} then {inner['kind']} lr={base}",
         {"kind": "warmup", "warmup_epochs": warm, "start_factor": start, "inner": inner}, base,
         trace(make, base, 25))

# ReduceLROnPlateau over metric sequences with the edge cases of every option.
rng = random.Random(20261128)
falling_then_flat = [1.0 / (1 + i) if i < 8 else 0.125 + 0.0001 * (i % 3) for i in range(40)]
noisy = [1.0]
for _ in range(39):
    noisy.append(noisy[-1] * (1 + rng.uniform(-0.05, 0.04)))
with_nan = [1.0, 0.9, float("nan"), 0.85, 0.86, float("nan"), float("inf"), 0.8] + [0.8] * 32
rising = [0.1 + 0.02 * i if i < 10 else 0.3 + 0.001 * rng.random() for i in range(40)]
SEQS = {"falling_then_flat": falling_then_flat, "noisy": noisy, "with_nan": with_nan,
        "rising": rising, "flat": [0.5] * 40}
grid = list(itertools.product(
    ["min", "max"], ["rel", "abs"], [1e-4, 0.01, 0.1], [0, 2, 5], [0, 2], [0.1, 0.5],
    [0.0, 1e-4], [1e-8, 1e-3]))
rng.shuffle(grid)
for i, (mode, tmode, threshold, patience, cooldown, factor, min_lr, eps) in enumerate(grid[:96]):
    seq_name = list(SEQS)[i % len(SEQS)]
    metrics = SEQS[seq_name]
    base = BASES[i % 2]
    config = {"kind": "plateau", "monitor": "val_loss" if mode == "min" else "val_acc",
              "mode": mode, "factor": factor, "patience": patience, "threshold": threshold,
              "threshold_mode": tmode, "cooldown": cooldown, "min_lr": min_lr, "eps": eps}
    make = lambda o: S.ReduceLROnPlateau(o, mode=mode, factor=factor, patience=patience,
                                         threshold=threshold, threshold_mode=tmode,
                                         cooldown=cooldown, min_lr=min_lr, eps=eps)
    case(f"plateau {mode}/{tmode} th={threshold} p={patience} cd={cooldown} f={factor} "
         f"min={min_lr} eps={eps} on {seq_name} lr={base}", config, base,
         trace(make, base, len(metrics), metrics), metrics)
case("plateau defaults", {"kind": "plateau"}, 1e-3,
     trace(lambda o: S.ReduceLROnPlateau(o), 1e-3, 40, falling_then_flat), falling_then_flat)
case("plateau monitors train_loss", {"kind": "plateau", "monitor": "train_loss", "patience": 1},
     1e-3, trace(lambda o: S.ReduceLROnPlateau(o, patience=1), 1e-3, 40, noisy), noisy)


# transformers' GreedyLR over the metric sequences above plus a steadily improving one (which
# raises the rate), with the edge cases of every option. Its default min_lr (1e-3) differs from
# lrlab's (0), so the bounds are always spelled out.
SEQS["falling"] = [1.0 / (1 + i) for i in range(40)]
SEQS["climbing"] = [0.5 + 0.01 * i for i in range(40)]
grid = list(itertools.product(
    ["min", "max"], ["rel", "abs"], [1e-6, 0.01], [0, 1, 3], [0, 2], [0, 2], [0.5, 0.9],
    [(0.0, 1.0), (1e-4, 0.3), (0.05, 0.2)], [False, True], [1, 3, 50], [500, 2]))
rng.shuffle(grid)
for i, (mode, tmode, threshold, patience, cooldown, warmup, factor, (min_lr, max_lr), smooth,
        window, reset) in enumerate(grid[:120]):
    seq_name = list(SEQS)[i % len(SEQS)]
    metrics = SEQS[seq_name]
    base = BASES[i % 2]
    if not min_lr <= base <= max_lr:
        min_lr, max_lr = 0.0, 1.0
    config = {"kind": "greedy", "monitor": "val_loss" if mode == "min" else "val_acc",
              "mode": mode, "factor": factor, "patience": patience, "threshold": threshold,
              "threshold_mode": tmode, "cooldown": cooldown, "warmup": warmup, "min_lr": min_lr,
              "max_lr": max_lr, "smooth": smooth, "window_size": window, "reset_start": reset}
    make = lambda o: GreedyLR(o, mode=mode, factor=factor, patience=patience,
                              threshold=threshold, threshold_mode=tmode, cooldown=cooldown,
                              warmup=warmup, min_lr=min_lr, max_lr=max_lr, smooth=smooth,
                              window_size=window, reset_start=reset)
    case(f"greedy {mode}/{tmode} th={threshold} p={patience} cd={cooldown} wu={warmup} "
         f"f={factor} [{min_lr}, {max_lr}] smooth={smooth}/{window} reset={reset} on {seq_name} "
         f"lr={base}", config, base, trace(make, base, len(metrics), metrics), metrics)
# Bounds relative to the base rate, and a reset that returns to it: lrlab's "0.01x"/"10x" are
# the absolute bounds transformers is given.
for base in BASES:
    metrics = SEQS["flat"] * 3
    case(f'greedy min_lr="0.25x" max_lr="10x" reset_start=3 on flat lr={base}',
         {"kind": "greedy", "factor": 0.5, "patience": 1, "min_lr": "0.25x", "max_lr": "10x",
          "reset_start": 3}, base,
         trace(lambda o: GreedyLR(o, factor=0.5, patience=1, min_lr=base / 4, max_lr=10 * base,
                                  reset_start=3), base, len(metrics), metrics), metrics)
    metrics = SEQS["falling"]
    case(f'greedy max_lr="10x" on falling lr={base}',
         {"kind": "greedy", "factor": 0.5, "patience": 0, "min_lr": 0.0, "max_lr": "10x"}, base,
         trace(lambda o: GreedyLR(o, factor=0.5, patience=0, min_lr=0.0, max_lr=10 * base),
               base, len(metrics), metrics), metrics)


def warmup_then_plateau(base, start, warm, metrics, **kwargs):
    """PyTorch cannot chain warmup and plateau (pytorch/pytorch#68978); written by hand as a
    user would: LinearLR for `warm` epochs, then a fresh ReduceLROnPlateau at the base rate
    fed the metrics of the epochs after the warmup."""
    opt = optimizer(base)
    warmup = S.LinearLR(opt, start_factor=start, end_factor=1.0, total_iters=warm)
    lrs = [lr_of(opt)]
    for _ in range(warm):
        warmup.step()
        lrs.append(lr_of(opt))
    opt.param_groups[0]["lr"] = base
    lrs[-1] = base
    plateau = S.ReduceLROnPlateau(opt, **kwargs)
    for m in metrics[warm:]:
        plateau.step(m)
        lrs.append(lr_of(opt))
    return lrs


for base, start, warm, seq_name in itertools.product(BASES, [0.1, 0.5], [2, 4], ["noisy", "falling_then_flat"]):
    metrics = SEQS[seq_name][:30]
    case(f"warmup {warm} epochs from {start} then plateau on {seq_name} lr={base}",
         {"kind": "warmup", "warmup_epochs": warm, "start_factor": start,
          "inner": {"kind": "plateau", "patience": 1, "cooldown": 1, "factor": 0.5}}, base,
         warmup_then_plateau(base, start, warm, metrics, patience=1, cooldown=1, factor=0.5),
         metrics)

# Lengths relative to the run: lrlab resolves them against `run` (epochs, steps per epoch)
# before building the schedule; PyTorch is given the numbers of ticks they stand for.
case('cosine t_max="epochs" over 4 epochs', {"kind": "cosine", "t_max": "epochs"}, 1e-3,
     trace(lambda o: S.CosineAnnealingLR(o, T_max=4), 1e-3, 6), run=(4, 1))
for epochs, size in [(50, 15), (10, 3), (2, 1)]:
    case(f'step step_size="30%" over {epochs} epochs', {"kind": "step", "step_size": "30%"}, 1e-3,
         trace(lambda o: S.StepLR(o, step_size=size), 1e-3, epochs), run=(epochs, 7))
case('multistep milestones=["50%", "75%"] over 8 epochs',
     {"kind": "multistep", "milestones": ["50%", "75%"], "gamma": 0.5}, 0.1,
     trace(lambda o: S.MultiStepLR(o, milestones=[4, 6], gamma=0.5), 0.1, 10), run=(8, 3))
case('sequential at "25%": linear over "epochs", then cosine over "epochs", 8 epochs',
     {"kind": "sequential", "milestones": ["25%"],
      "schedulers": [{"kind": "linear", "start_factor": 0.1, "total_iters": "epochs"},
                     {"kind": "cosine", "t_max": "epochs"}]}, 1e-3,
     trace(lambda o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.1, total_iters=2),
                                        S.CosineAnnealingLR(o, T_max=6)], milestones=[2]),
           1e-3, 8), run=(8, 5))
# transformers' get_linear_schedule_with_warmup (the Trainer's default schedule), as a lambda:
# a warmup of 10 % of 4 × 10 steps, then a linear decay that ends on the last step.
WARM, TOTAL = 4, 40
case('warmup_steps="10%" then linear to 0 over "steps" (the Trainer schedule), 4 x 10 steps',
     {"kind": "warmup", "warmup_steps": "10%", "start_factor": 0.0,
      "inner": {"kind": "linear", "start_factor": 1.0, "end_factor": 0.0, "total_iters": "steps",
                "interval": "step"}}, 3e-5,
     trace(lambda o: S.LambdaLR(o, lambda s: s / WARM if s < WARM
                                else max(0.0, (TOTAL - s) / (TOTAL - WARM))), 3e-5, TOTAL),
     run=(4, 10))

# One case per line: small enough to commit, readable in a diff.
lines = ",\n".join(json.dumps(c, separators=(",", ":")) for c in cases)
OUT.write_text(f'{{"torch":"{torch.__version__}","transformers":"{transformers.__version__}",'
               f'"cases":[\n{lines}\n]}}\n')
print(f"{len(cases)} cases from torch {torch.__version__} and transformers "
      f"{transformers.__version__} -> {OUT}")
