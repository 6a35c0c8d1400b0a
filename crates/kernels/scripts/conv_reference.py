#!/usr/bin/env python3
"""PyTorch's convolution gradients for every convolution shape of the CIFAR ResNet-18.

Run by hand from the repository root (CI needs no Python):

    pip install torch safetensors
    python3 crates/kernels/scripts/conv_reference.py

Writes crates/kernels/tests/fixtures/conv_reference.safetensors: for each case NAME, the input
`NAME.x`, weight `NAME.w`, output gradient `NAME.dy`, and PyTorch's output `NAME.y`, input
gradient `NAME.dx` and weight gradient `NAME.dw` (float64 arithmetic, stored as float32), plus
`NAME.geometry` = [stride, padding]. The cases are the network's convolutions at a small width
(3x3 stride 1 and 2 with padding 1, the 1x1 stride-2 shortcut), on even and odd image sizes so
that a strided convolution's dropped last row and column are covered.
"""
import pathlib

import torch
from safetensors.torch import save_file

CASES = [
    # name, (batch, channels in, size), channels out, kernel, stride, padding
    ("stem_3x3_s1", (2, 3, 8), 4, 3, 1, 1),
    ("block_3x3_s1", (2, 4, 8), 4, 3, 1, 1),
    ("down_3x3_s2", (2, 4, 8), 6, 3, 2, 1),
    ("down_3x3_s2_odd", (2, 4, 7), 6, 3, 2, 1),
    ("shortcut_1x1_s2", (2, 4, 8), 6, 1, 2, 0),
    ("shortcut_1x1_s2_odd", (3, 4, 7), 6, 1, 2, 0),
]


def main() -> None:
    torch.manual_seed(0)
    tensors = {}
    for name, (n, c, size), out, k, stride, padding in CASES:
        x = torch.randn(n, c, size, size, dtype=torch.float64, requires_grad=True)
        w = torch.randn(out, c, k, k, dtype=torch.float64, requires_grad=True)
        y = torch.nn.functional.conv2d(x, w, stride=stride, padding=padding)
        dy = torch.randn_like(y)
        y.backward(dy)
        for key, value in [("x", x), ("w", w), ("dy", dy), ("y", y), ("dx", x.grad), ("dw", w.grad)]:
            tensors[f"{name}.{key}"] = value.detach().to(torch.float32).contiguous()
        tensors[f"{name}.geometry"] = torch.tensor([stride, padding], dtype=torch.int64)
    out_path = pathlib.Path("crates/kernels/tests/fixtures/conv_reference.safetensors")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out_path), metadata={"torch": torch.__version__})
    print(f"wrote {out_path} ({len(CASES)} cases, torch {torch.__version__})")


if __name__ == "__main__":
    main()
