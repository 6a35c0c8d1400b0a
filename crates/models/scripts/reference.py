#!/usr/bin/env python3
"""Reference fixtures for lrlab-models from torchvision and transformers, and the interop check.

Run by hand from the repository root (CI needs no Python):

    pip install torch torchvision transformers safetensors numpy
    HF_HOME=../shared/hf-cache HF_HUB_OFFLINE=1 python3 crates/models/scripts/reference.py

1. Interop: runs lrlab's `export_for_pytorch` example, loads the ResNet-18 it saved into
   torchvision's resnet18 (3x3 stem, no max-pool) and the MiniLM classifier into transformers'
   BertForSequenceClassification, both with strict=True, and checks that PyTorch's logits on
   lrlab's inputs equal lrlab's. It stops with an error otherwise.
2. Writes crates/models/tests/fixtures/:
   - names.json: torchvision's state_dict names and shapes of the CIFAR ResNet-18 (width 64,
     10 classes), transformers' of BertForSequenceClassification on all-MiniLM-L6-v2 (2 labels),
     and the parameter counts, bert-base-uncased's encoder included;
   - resnet_w4.safetensors: a width-4 CIFAR ResNet-18 with random weights and batch-norm
     statistics (torch.manual_seed(0));
   - resnet_w4_expected.safetensors: an input batch and labels, logits in evaluation and in
     training mode, the training-mode cross-entropy and every parameter's gradient of it, and
     the batch-norm running statistics after that training step;
   - minilm_head.safetensors: a random 2-label classifier for all-MiniLM-L6-v2;
   - minilm_expected.json: token ids with padding, labels, logits, the loss and, per parameter,
     the gradient's norm, largest magnitude and values at fixed indices (with dropout off);
   - evaluate_expected.json: PyTorch's mean cross-entropy and accuracy of the width-4 ResNet on
     the first 64 CIFAR-10 test images of the cache (Pillow-decoded, normalised with lrlab's
     mean and std) and of MiniLM with that head on the first 16 IMDB test reviews (transformers'
     tokenizer, max_length 128), for `cargo xtask evaluate`'s end-to-end test.
"""

import io
import json
import os
import pathlib
import subprocess
import tempfile

import numpy as np
import pyarrow.parquet as pq
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel

CRATE = pathlib.Path(__file__).resolve().parent.parent
ROOT = CRATE.parent.parent
FIXTURES = CRATE / "tests" / "fixtures"
HUB = pathlib.Path(os.environ.get("HF_HOME", pathlib.Path.home() / ".cache/huggingface")) / "hub"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
TOLERANCE = 1e-4


CIFAR_MEAN = [0.4914, 0.4822, 0.4465]  # lrlab_datasets::MEAN
CIFAR_STD = [0.2470, 0.2435, 0.2616]  # lrlab_datasets::STD


def snapshot(repo, kind="model"):
    folder = HUB / f"{kind}s--{repo.replace('/', '--')}"
    return folder / "snapshots" / (folder / "refs" / "main").read_text().strip()


def cifar_resnet18(width=64, num_classes=10):
    """torchvision's resnet18 with the 3x3 stride-1 stem, no max-pool, stages width x [1,2,4,8]."""
    model = ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
    model.inplanes = width
    model.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
    model.bn1 = nn.BatchNorm2d(width)
    model.maxpool = nn.Identity()
    if width != 64:
        model.layer1 = model._make_layer(BasicBlock, width, 2)
        model.layer2 = model._make_layer(BasicBlock, 2 * width, 2, stride=2)
        model.layer3 = model._make_layer(BasicBlock, 4 * width, 2, stride=2)
        model.layer4 = model._make_layer(BasicBlock, 8 * width, 2, stride=2)
        model.fc = nn.Linear(8 * width, num_classes)
    return model


def minilm_classifier(dropout):
    extra = {} if dropout else {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    return BertForSequenceClassification.from_pretrained(
        snapshot(MINILM), num_labels=2, attn_implementation="eager", **extra)


def names_and_shapes(model):
    return [[name, list(t.shape)] for name, t in model.state_dict().items()]


def trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def assert_close(what, actual, expected):
    scale = expected.abs().max().item()
    error = (actual - expected).abs().max().item() / scale
    print(f"{what}: max |torch - lrlab| / max |lrlab| = {error:.2e}")
    if error > TOLERANCE:
        raise SystemExit(f"{what}: PyTorch and lrlab disagree ({error:.2e} > {TOLERANCE})")
    return error


def interop():
    """lrlab's saved weights in torchvision and transformers, strict, and the same logits."""
    out = {}
    with tempfile.TemporaryDirectory() as folder:
        folder = pathlib.Path(folder)
        subprocess.run(["cargo", "run", "--quiet", "-p", "lrlab-models", "--example",
                        "export_for_pytorch", "--", str(folder)], cwd=ROOT, check=True)
        resnet = cifar_resnet18()
        resnet.load_state_dict(load_file(folder / "resnet18.safetensors"), strict=True)
        io = load_file(folder / "resnet18_io.safetensors")
        with torch.no_grad():
            logits = resnet.eval()(io["input"])
        out["resnet18"] = assert_close("resnet18 logits", logits, io["logits"])

        config = json.loads((snapshot(MINILM) / "config.json").read_text())
        bert = BertForSequenceClassification(BertConfig(**config, num_labels=2))
        bert.load_state_dict(load_file(folder / "minilm" / "model.safetensors"), strict=True)
        io = load_file(folder / "minilm_io.safetensors")
        with torch.no_grad():
            logits = bert.eval()(input_ids=io["input_ids"], attention_mask=io["attention_mask"]).logits
        out["minilm_classifier"] = assert_close("minilm logits", logits, io["logits"])
    return out


def resnet_fixture():
    torch.manual_seed(0)
    model = cifar_resnet18(width=4)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.num_batches_tracked.fill_(3)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, FIXTURES / "resnet_w4.safetensors")
    images = torch.randn(4, 3, 32, 32)
    labels = torch.randint(0, 10, (4,))
    expected = {"input": images, "labels": labels}
    with torch.no_grad():
        expected["logits_eval"] = model.eval()(images)
    logits = model.train()(images)
    loss = nn.functional.cross_entropy(logits, labels)
    loss.backward()
    expected["logits_train"] = logits.detach()
    expected["loss"] = loss.detach()
    for name, p in model.named_parameters():
        expected[f"grad.{name}"] = p.grad
    for name, t in model.state_dict().items():
        if "running" in name or "num_batches" in name:
            expected[f"after.{name}"] = t
    save_file({k: v.contiguous() for k, v in expected.items()}, FIXTURES / "resnet_w4_expected.safetensors")


def minilm_fixture():
    torch.manual_seed(1)
    model = minilm_classifier(dropout=False)
    head = {"classifier.weight": torch.randn(2, 384) * 0.02, "classifier.bias": torch.randn(2) * 0.02}
    model.load_state_dict(head, strict=False)
    save_file(head, FIXTURES / "minilm_head.safetensors")
    lengths = [16, 11, 5]
    ids = torch.randint(1000, 30000, (3, 16))
    mask = torch.tensor([[1 if j < n else 0 for j in range(16)] for n in lengths])
    ids = ids * mask
    labels = torch.tensor([0, 1, 1])
    model.eval()
    with torch.no_grad():
        logits_eval = model(input_ids=ids, attention_mask=mask).logits
    model.train()
    logits = model(input_ids=ids, attention_mask=mask).logits
    loss = nn.functional.cross_entropy(logits, labels)
    loss.backward()
    picker = torch.Generator().manual_seed(2)
    grads = {}
    for name, p in model.named_parameters():
        g = p.grad.flatten()
        largest = torch.topk(g.abs(), k=min(8, g.numel())).indices
        anywhere = torch.randint(0, g.numel(), (8,), generator=picker)
        index = torch.cat([largest, anywhere])
        grads[name] = {"norm": g.norm().item(), "max_abs": g.abs().max().item(),
                       "index": index.tolist(), "value": g[index].tolist()}
    expected = {"input_ids": ids.tolist(), "attention_mask": mask.tolist(), "labels": labels.tolist(),
                "logits_eval": logits_eval.tolist(), "logits_train": logits.tolist(),
                "loss": loss.item(), "grads": grads}
    (FIXTURES / "minilm_expected.json").write_text(json.dumps(expected, indent=1) + "\n")


def test_rows(dataset, n):
    path = snapshot(dataset, kind="dataset") / "plain_text/test-00000-of-00001.parquet"
    return pq.read_table(path).slice(0, n).to_pylist()


def mean_loss_and_accuracy(logits, labels):
    return {"loss": nn.functional.cross_entropy(logits, labels).item(),
            "accuracy": (logits.argmax(1) == labels).double().mean().item(), "n": len(labels)}


def evaluate_fixture():
    resnet = cifar_resnet18(width=4)
    resnet.load_state_dict(load_file(FIXTURES / "resnet_w4.safetensors"), strict=True)
    rows = test_rows("uoft-cs/cifar10", 64)
    pixels = np.stack([np.asarray(Image.open(io.BytesIO(r["img"]["bytes"])).convert("RGB")) for r in rows])
    images = (torch.tensor(pixels, dtype=torch.float32) / 255.0 - torch.tensor(CIFAR_MEAN)) / torch.tensor(CIFAR_STD)
    with torch.no_grad():
        logits = resnet.eval()(images.permute(0, 3, 1, 2).contiguous())
    cifar = mean_loss_and_accuracy(logits, torch.tensor([r["label"] for r in rows]))

    bert = minilm_classifier(dropout=True)
    bert.load_state_dict(load_file(FIXTURES / "minilm_head.safetensors"), strict=False)
    tokenizer = AutoTokenizer.from_pretrained(snapshot(MINILM))
    rows = test_rows("stanfordnlp/imdb", 16)
    encoded = tokenizer([r["text"] for r in rows], max_length=128, truncation=True,
                        padding="max_length", return_tensors="pt")
    with torch.no_grad():
        logits = bert.eval()(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"]).logits
    imdb = mean_loss_and_accuracy(logits, torch.tensor([r["label"] for r in rows]))
    expected = {"cifar10": {"weights": "resnet_w4.safetensors", **cifar},
                "imdb": {"checkpoint": MINILM, "head": "minilm_head.safetensors", "max_len": 128, **imdb}}
    (FIXTURES / "evaluate_expected.json").write_text(json.dumps(expected, indent=1) + "\n")


def names_fixture(interop_errors):
    resnet = cifar_resnet18()
    bert = minilm_classifier(dropout=True)
    bert_base = BertModel(BertConfig())
    names = {
        "torch": torch.__version__,
        "resnet18": {"state_dict": names_and_shapes(resnet), "trainable": trainable(resnet)},
        "minilm_classifier": {"state_dict": names_and_shapes(bert), "trainable": trainable(bert)},
        "bert_base_uncased_encoder": {"trainable": trainable(bert_base)},
        "interop_max_relative_logit_error": interop_errors,
    }
    (FIXTURES / "names.json").write_text(json.dumps(names, indent=1) + "\n")


if __name__ == "__main__":
    FIXTURES.mkdir(parents=True, exist_ok=True)
    errors = interop()
    resnet_fixture()
    minilm_fixture()
    evaluate_fixture()
    names_fixture(errors)
    print(f"wrote {FIXTURES}")
