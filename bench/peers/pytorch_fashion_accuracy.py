#!/usr/bin/env python3
"""The PyTorch peer for polytask's accuracy bar: the same model, data split, optimiser and
epochs as `polytask train --preset PRESET`, trained with torch on the CPU.

  /usr/bin/python3 bench/peers/pytorch_fashion_accuracy.py --preset mnist-digit-parity

Matches polytask's (Keras') choices: Glorot-uniform kernels and zero biases; Adam lr 1e-3,
betas 0.9/0.999, eps 1e-7; batch 128; the validation split is the last 10% of the training
set (Keras' validation_split) and is not trained on; shuffling every epoch; BatchNorm
momentum 0.99 (torch momentum 0.01) and eps 1e-3; pixels scaled to [0, 1].
Prints one JSON line with the per-head test metrics.
"""
import argparse
import gzip
import json
import os
import struct
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path):
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    dims = struct.unpack(">" + "I" * (magic & 0xFF), data[4:4 + 4 * (magic & 0xFF)])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * len(dims)).reshape(dims)


def load(data_dir):
    def pick(stem):
        for name in (stem + ".gz", stem):
            if os.path.exists(os.path.join(data_dir, name)):
                return os.path.join(data_dir, name)
        raise SystemExit(f"missing {stem} in {data_dir}")
    x = read_idx(pick("train-images-idx3-ubyte")).astype(np.float32)[:, None] / 255.0
    y = read_idx(pick("train-labels-idx1-ubyte")).astype(np.int64)
    tx = read_idx(pick("t10k-images-idx3-ubyte")).astype(np.float32)[:, None] / 255.0
    ty = read_idx(pick("t10k-labels-idx1-ubyte")).astype(np.int64)
    return x, y, tx, ty


def glorot(module):
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)


class DigitParity(nn.Module):
    """Conv32-Pool-Conv64-Pool-Dense128; heads Dense10 and Dense2 (weights 1.0 / 0.5)."""
    heads = [("digit", "ce", 1.0), ("parity", "ce", 0.5)]

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 32, 3), nn.Conv2d(32, 64, 3)
        self.shared = nn.Linear(1600, 128)
        self.digit, self.parity = nn.Linear(128, 10), nn.Linear(128, 2)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        z = F.relu(self.shared(x.flatten(1)))
        return {"digit": self.digit(z), "parity": self.parity(z)}


class TypeBrightness(nn.Module):
    """Conv-BN-ReLU-Pool x2, Dense128; heads Dense64-Dropout0.3-Dense10 / -Dense1 (MSE)."""
    heads = [("type", "ce", 1.0), ("brightness", "mse", 1.0)]

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 32, 3), nn.Conv2d(32, 64, 3)
        self.b1 = nn.BatchNorm2d(32, eps=1e-3, momentum=0.01)
        self.b2 = nn.BatchNorm2d(64, eps=1e-3, momentum=0.01)
        self.shared = nn.Linear(1600, 128)
        self.th, self.t = nn.Linear(128, 64), nn.Linear(64, 10)
        self.bh, self.b = nn.Linear(128, 64), nn.Linear(64, 1)
        self.drop = nn.Dropout(0.3)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.b1(self.c1(x))), 2)
        x = F.max_pool2d(F.relu(self.b2(self.c2(x))), 2)
        z = F.relu(self.shared(x.flatten(1)))
        return {"type": self.t(self.drop(F.relu(self.th(z)))),
                "brightness": self.b(self.drop(F.relu(self.bh(z))))}


def targets(model, x, y):
    out = {}
    for name, _, _ in model.heads:
        if name == "parity":
            out[name] = y % 2
        elif name == "brightness":
            out[name] = x.mean(dim=(1, 2, 3)).unsqueeze(1)
        else:
            out[name] = y
    return out


def losses(model, outputs, t):
    per = {}
    for name, kind, _ in model.heads:
        per[name] = F.cross_entropy(outputs[name], t[name]) if kind == "ce" else F.mse_loss(outputs[name], t[name])
    return per


def evaluate(model, x, y, batch):
    model.eval()
    sums = {}
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb, yb = x[i:i + batch], y[i:i + batch]
            out, t = model(xb), targets(model, xb, yb)
            for name, kind, _ in model.heads:
                key = name + ("_accuracy" if kind == "ce" else "_mae")
                val = (out[name].argmax(1) == t[name]).sum().item() if kind == "ce" else (out[name] - t[name]).abs().sum().item()
                sums[key] = sums.get(key, 0.0) + val
    return {k: v / len(x) for k, v in sums.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="mnist-digit-parity", choices=["mnist-digit-parity", "fashion-type-brightness"])
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    x, y, tx, ty = (torch.from_numpy(v.copy()) for v in load(a.data))
    train_rows = len(x) - int(len(x) * 0.1)
    x, y = x[:train_rows], y[:train_rows]
    model = (DigitParity if a.preset == "mnist-digit-parity" else TypeBrightness)()
    model.apply(glorot)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    start = time.time()
    for _ in range(a.epochs):
        model.train()
        order = torch.randperm(train_rows)
        for i in range(0, train_rows, a.batch_size):
            idx = order[i:i + a.batch_size]
            xb, yb = x[idx], y[idx]
            per = losses(model, model(xb), targets(model, xb, yb))
            total = sum(w * per[name] for name, _, w in model.heads)
            opt.zero_grad()
            total.backward()
            opt.step()
    seconds = time.time() - start
    result = {"framework": "pytorch " + torch.__version__, "preset": a.preset, "epochs": a.epochs,
              "seconds_per_epoch": seconds / a.epochs}
    result.update({"test_" + k: v for k, v in evaluate(model, tx, ty, 1000).items()})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
