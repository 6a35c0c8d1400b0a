#!/usr/bin/env python3
"""Cost of one PyTorch `scheduler.step()`, to set beside `cargo bench -p lrlab-schedulers`.

    python3 crates/schedulers/scripts/pytorch_step_cost.py

Uses the parameters of each schedule's first example (`ScheduleConfig::examples` in its file,
benchmark `observe/<kind>/0`) where PyTorch has the schedule. Run it right after the
benchmark on a quiet machine and compare the two per kind.
"""

import timeit
import warnings

import torch
from torch.optim import SGD
from torch.optim import lr_scheduler as S

warnings.filterwarnings("ignore")

SCHEDULES = {
    "constant": lambda o: S.ConstantLR(o, factor=0.5, total_iters=3),
    "step": lambda o: S.StepLR(o, step_size=3, gamma=0.5),
    "multistep": lambda o: S.MultiStepLR(o, milestones=[2, 5, 9], gamma=0.3),
    "exponential": lambda o: S.ExponentialLR(o, gamma=0.9),
    "cosine": lambda o: S.CosineAnnealingLR(o, T_max=7, eta_min=1e-5),
    "cosine_warm_restarts": lambda o: S.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=1e-6),
    "one_cycle": lambda o: S.OneCycleLR(o, max_lr=0.01, total_steps=10**8, cycle_momentum=False),
    "linear": lambda o: S.LinearLR(o, start_factor=0.1, total_iters=6),
    "polynomial": lambda o: S.PolynomialLR(o, total_iters=8, power=2.0),
    "sequential": lambda o: S.SequentialLR(
        o, [S.LinearLR(o, start_factor=0.2, total_iters=3), S.CosineAnnealingLR(o, T_max=10)], [3]),
    "plateau": lambda o: S.ReduceLROnPlateau(o, patience=1, cooldown=1),
}
CALLS = 20000

for kind, make in SCHEDULES.items():
    sched = make(SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3))
    step = (lambda: sched.step(0.5)) if kind == "plateau" else sched.step
    seconds = min(timeit.repeat(step, number=CALLS, repeat=5)) / CALLS
    print(f"{kind:22s} {seconds * 1e9:8.0f} ns")
