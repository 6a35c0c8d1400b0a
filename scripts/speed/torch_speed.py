#!/usr/bin/env python3
"""PyTorch's side of `cargo xtask speed --pytorch`: the workloads of workloads.json (beside this
file) timed in PyTorch eager, on request, so that lrlab and PyTorch alternate on one machine.

    python3 scripts/speed/torch_speed.py --device cpu|cuda --dtype f32|bf16 [--tf32]

Prints one JSON line about itself, then answers each request line on stdin,
{"workload": NAME, "steps": N, "warmup": K}, with {"seconds": [N step times]}. A training step
is forward (under autocast for bf16), f32 cross-entropy, backward and torch.optim.Adam (lr 1e-3,
weight decay 1e-4); inference a forward pass in evaluation mode without autograd.
"""

import argparse
import json
import pathlib
import sys
import time

import torch
from torch import nn


def resnet18(spec):
    import torchvision

    if spec["width"] != 64:
        sys.exit("torch_speed.py: torchvision's resnet18 has width 64 only")
    model = torchvision.models.resnet18(num_classes=spec["num_classes"])
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


def bert(spec):
    import transformers

    config = transformers.BertConfig(**spec["config"], num_labels=spec["num_labels"])
    return transformers.BertForSequenceClassification(config)


def build(spec, name, device, dtype):
    """A function that runs one step of workload `name`."""
    workload = spec["workloads"][name]
    generator = torch.Generator().manual_seed(0)
    if "matmul" in workload:
        n = workload["matmul"]
        a, b = (torch.randn(n, n, generator=generator).to(device, dtype) for _ in range(2))
        return lambda: a @ b
    if "conv" in workload:
        c = workload["conv"]
        x = torch.randn(c["batch"], c["channels"], c["size"], c["size"], generator=generator)
        w = torch.randn(c["out_channels"], c["channels"], c["kernel"], c["kernel"], generator=generator)
        x, w = (t.to(device, dtype).requires_grad_() for t in (x, w))
        y_shape = nn.functional.conv2d(x, w, stride=c["stride"], padding=c["padding"]).shape
        dy = torch.randn(y_shape, generator=generator).to(device, dtype)

        def conv_step():
            x.grad, w.grad = None, None
            nn.functional.conv2d(x, w, stride=c["stride"], padding=c["padding"]).backward(dy)

        return conv_step
    model_spec = spec["models"][workload["model"]]
    batch = workload["batch"]
    if model_spec["kind"] == "resnet18":
        model = resnet18(model_spec)
        inputs = torch.randn(batch, 3, 32, 32, generator=generator)
        classes = model_spec["num_classes"]
    else:
        model = bert(model_spec)
        ids = 1000 + (torch.arange(batch * workload["max_len"]) * 7919) % 28000
        inputs = ids.reshape(batch, workload["max_len"])
        classes = model_spec["num_labels"]
    model, inputs = model.to(device), inputs.to(device)
    labels = (torch.arange(batch) % classes).to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16)

    def forward():
        out = model(inputs)
        return out if isinstance(out, torch.Tensor) else out.logits

    if not workload["train"]:
        model.eval()

        def infer():
            with torch.no_grad(), autocast:
                forward()

        return infer
    model.train()
    adam = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)

    def train_step():
        with autocast:
            logits = forward()
        loss = nn.functional.cross_entropy(logits.float(), labels)
        adam.zero_grad(set_to_none=True)
        loss.backward()
        adam.step()

    return train_step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    parser.add_argument("--tf32", action="store_true")
    args = parser.parse_args()
    spec = json.loads(pathlib.Path(__file__).with_name("workloads.json").read_text())
    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    about = {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": name}
    print(json.dumps(about), flush=True)
    current, step = None, None
    for line in sys.stdin:
        request = json.loads(line)
        if request["workload"] != current:
            current, step = None, None  # free the last workload's model first
            if device.type == "cuda":
                torch.cuda.empty_cache()
            step = build(spec, request["workload"], device, dtype)
            current = request["workload"]
        for _ in range(request["warmup"]):
            step()
        sync()
        seconds = []
        for _ in range(request["steps"]):
            start = time.perf_counter()
            step()
            sync()
            seconds.append(time.perf_counter() - start)
        print(json.dumps({"seconds": seconds}), flush=True)


if __name__ == "__main__":
    main()
