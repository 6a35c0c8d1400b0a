#!/usr/bin/env python3
"""How far PyTorch's autocast to bfloat16 moves one training step from its own f32 step, at the
settings of tests/precision.rs: the reference for that test's tolerances (PyTorch's bf16 error is
what a correct bf16 implementation may show). Prints the relative error of the logits (largest
difference over largest magnitude) and of the gradient vector (‖Δ‖ / ‖g‖).

    python3 crates/models/scripts/bf16_error.py
"""

import torch
import torchvision
import transformers
from torch import nn


def step_error(model, inputs, labels):
    def step(bf16):
        model.zero_grad()
        torch.manual_seed(1)  # the same dropout masks in both
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(inputs)
        logits = (out if isinstance(out, torch.Tensor) else out.logits).float()
        nn.functional.cross_entropy(logits, labels).backward()
        return logits.detach(), torch.cat([p.grad.flatten() for p in model.parameters()])

    (l32, g32), (l16, g16) = step(False), step(True)
    return ((l16 - l32).abs().max() / l32.abs().max()).item(), ((g16 - g32).norm() / g32.norm()).item()


if __name__ == "__main__":
    torch.manual_seed(3)
    resnet = torchvision.models.resnet18(num_classes=10)
    resnet.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    resnet.maxpool = nn.Identity()
    resnet.train()
    for batch in (4, 16):
        logits, grads = step_error(resnet, torch.randn(batch, 3, 32, 32), torch.arange(batch) % 10)
        print(f"resnet18 batch {batch}: logits {logits:.3f}, gradients {grads:.3f}")
    config = transformers.BertConfig(
        vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, max_position_embeddings=64, num_labels=2)
    bert = transformers.BertForSequenceClassification(config).train()
    ids = 1 + (torch.arange(4 * 16) * 7919) % 999
    logits, grads = step_error(bert, ids.reshape(4, 16), torch.arange(4) % 2)
    print(f"small bert batch 4, len 16: logits {logits:.3f}, gradients {grads:.3f}")
