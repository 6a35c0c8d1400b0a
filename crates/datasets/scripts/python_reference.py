#!/usr/bin/env python3
"""Reference values for lrlab-datasets, computed with the Python ecosystem from the Hub cache.

Run by hand (CI needs no Python):

    pip install transformers pyarrow pillow numpy
    HF_HOME=../shared/hf-cache python3 crates/datasets/scripts/python_reference.py

Writes crates/datasets/tests/fixtures/python_reference.json with
- `cifar10`: mean and std (numpy, ddof=0) of the raw [0, 1] pixels of the whole training file
  (= train + val before any limit), per channel, decoded with Pillow;
- `imdb`: token counts of the whole training file with special tokens and without truncation,
  from transformers' pure-Python `BertTokenizer` (an implementation independent of the Rust
  `tokenizers`), and the ids and attention masks of a few reviews at max_length 128.
No data is copied: only statistics, row numbers and token ids.
"""

import io
import json
import os
import pathlib

import numpy as np
import pyarrow.parquet as pq
from PIL import Image
from transformers import BertTokenizer

HUB = pathlib.Path(os.environ.get("HF_HOME", pathlib.Path.home() / ".cache/huggingface")) / "hub"
OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "python_reference.json"
CHECKPOINT = "sentence-transformers/all-MiniLM-L6-v2"
MAX_LEN = 128
ROWS = [0, 1, 2, 3, 17, 500]


def snapshot(kind, repo):
    folder = HUB / f"{kind}s--{repo.replace('/', '--')}"
    return folder / "snapshots" / (folder / "refs" / "main").read_text().strip()


cifar = pq.read_table(snapshot("dataset", "uoft-cs/cifar10") / "plain_text/train-00000-of-00001.parquet")
pixels = np.stack([np.asarray(Image.open(io.BytesIO(img["bytes"])).convert("RGB"))
                   for img in cifar.column("img").to_pylist()]).astype(np.float64) / 255.0
cifar_ref = {
    "rows": len(pixels),
    "pixel_mean": pixels.reshape(-1, 3).mean(axis=0).tolist(),
    "pixel_std": pixels.reshape(-1, 3).std(axis=0).tolist(),
}

imdb = pq.read_table(snapshot("dataset", "stanfordnlp/imdb") / "plain_text/train-00000-of-00001.parquet")
texts = imdb.column("text").to_pylist()
tokenizer = BertTokenizer(str(snapshot("model", CHECKPOINT) / "vocab.txt"), do_lower_case=True)
lengths = [len(tokenizer(t, truncation=False)["input_ids"]) for t in texts]
encoded = [tokenizer(texts[r], max_length=MAX_LEN, truncation=True, padding="max_length") for r in ROWS]
imdb_ref = {
    "rows": len(texts),
    "checkpoint": CHECKPOINT,
    "max_len": MAX_LEN,
    "tokens_mean": float(np.mean(lengths)),
    "tokens_max": int(max(lengths)),
    "truncated_fraction": float(np.mean([l > MAX_LEN for l in lengths])),
    "encoded": [{"row": r, "ids": e["input_ids"], "mask": e["attention_mask"]} for r, e in zip(ROWS, encoded)],
}

OUT.write_text(json.dumps({"cifar10": cifar_ref, "imdb": imdb_ref}) + "\n")
print(json.dumps({"cifar10": cifar_ref, **{k: v for k, v in imdb_ref.items() if k != "encoded"}}, indent=1))
