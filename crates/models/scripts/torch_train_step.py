#!/usr/bin/env python3
"""PyTorch's time for the training steps of `benches/train_step.rs`: forward, cross-entropy,
backward and an AdamW update at batch 32 on the CPU (ResNet-18 CIFAR, width 64; MiniLM-L6 at
max_len 128, dropout on). Prints the median of 10 timed steps after 2 warm-up steps.

    HF_HOME=../shared/hf-cache HF_HUB_OFFLINE=1 python3 crates/models/scripts/torch_train_step.py
"""

import statistics
import time

import torch
from torch import nn

from reference import cifar_resnet18, minilm_classifier

BATCH, MAX_LEN, STEPS = 32, 128, 10


def median_step(model, inputs, labels):
    adam = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    model.train()
    times = []
    for step in range(STEPS + 2):
        start = time.perf_counter()
        loss = nn.functional.cross_entropy(model(inputs) if not isinstance(inputs, dict)
                                           else model(**inputs).logits, labels)
        adam.zero_grad()
        loss.backward()
        adam.step()
        if step >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


if __name__ == "__main__":
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    labels = torch.arange(BATCH) % 10
    t = median_step(cifar_resnet18(), torch.randn(BATCH, 3, 32, 32), labels)
    print(f"resnet18_cifar_batch32: {t:.3f} s/step, {BATCH / t:.1f} images/s")
    ids = 1000 + (torch.arange(BATCH * MAX_LEN) * 7919) % 28000
    inputs = {"input_ids": ids.reshape(BATCH, MAX_LEN)}
    t = median_step(minilm_classifier(dropout=True), inputs, torch.arange(BATCH) % 2)
    print(f"minilm_l6_batch32_len128: {t:.3f} s/step, {BATCH / t:.1f} sequences/s")
