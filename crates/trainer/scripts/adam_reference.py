#!/usr/bin/env python3
"""PyTorch's Adam and AdamW over 10 steps, for lrlab-trainer's optimizer parity test.

Run by hand (CI needs no Python):

    pip install torch
    python3 crates/trainer/scripts/adam_reference.py

Two parameters, p (4x3) and q (5), minimise  sum(sin(p) * a) + sum((q - b)^2)  with fixed a and
b; the learning rate changes every step, as a scheduler would change it. For each case the file
records the initial values, the rates, the parameters after every step and, from step 2 on,
<g_t, d_{t-1}>: the gradient the update uses (with the L2 term for Adam) dotted with the
previous step's direction d = (theta_{t-1} - theta_t) / lr_{t-1}, and their cosine
<g_t, d_{t-1}> / (|g_t| |d_{t-1}|).
Writes crates/trainer/tests/fixtures/adam_reference.json.
"""

import json
import pathlib

import torch

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "adam_reference.json"
LRS = [1e-2, 2e-2, 5e-3, 1e-2, 3e-2, 1e-3, 1e-2, 2e-2, 5e-3, 1e-2]
CASES = [
    {"kind": "adam", "weight_decay": 0.0, "betas": [0.9, 0.999], "eps": 1e-8},
    {"kind": "adam", "weight_decay": 0.1, "betas": [0.9, 0.999], "eps": 1e-8},
    {"kind": "adamw", "weight_decay": 0.1, "betas": [0.8, 0.99], "eps": 1e-6},
]


def run(case):
    torch.manual_seed(0)
    p = torch.randn(4, 3, dtype=torch.float32, requires_grad=True)
    q = torch.randn(5, dtype=torch.float32, requires_grad=True)
    a = torch.randn(4, 3)
    b = torch.randn(5)
    start = {"p": p.detach().flatten().tolist(), "q": q.detach().tolist()}
    cls = torch.optim.Adam if case["kind"] == "adam" else torch.optim.AdamW
    opt = cls([p, q], lr=LRS[0], betas=tuple(case["betas"]), eps=case["eps"],
              weight_decay=case["weight_decay"], foreach=False)
    after, dots, cosines, previous = [], [], [], None
    for lr in LRS:
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad()
        loss = (torch.sin(p) * a).sum() + ((q - b) ** 2).sum()
        loss.backward()
        theta = [p.detach().clone(), q.detach().clone()]
        grads = [x.grad.clone() for x in (p, q)]
        if case["kind"] == "adam":
            grads = [g + case["weight_decay"] * t for g, t in zip(grads, theta)]
        if previous is not None:
            dot = sum(float((g.double() * d.double()).sum()) for g, d in zip(grads, previous))
            g_norm = sum(float((g.double() ** 2).sum()) for g in grads) ** 0.5
            d_norm = sum(float((d.double() ** 2).sum()) for d in previous) ** 0.5
            dots.append(dot)
            cosines.append(dot / (g_norm * d_norm))
        opt.step()
        previous = [(t - x.detach()) / lr for t, x in zip(theta, (p, q))]
        after.append({"p": p.detach().flatten().tolist(), "q": q.detach().tolist()})
    return {**case, "a": a.flatten().tolist(), "b": b.tolist(), "start": start, "lrs": LRS,
            "after": after, "grad_dots": dots, "grad_cosines": cosines}


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"torch": torch.__version__, "cases": [run(c) for c in CASES]}, indent=1) + "\n")
    print(f"wrote {OUT}")
