#!/usr/bin/env python3
"""The presets' models in PyTorch 2.x on the CPU, trained with Keras' semantics: the PyTorch
peer of `polytask train` in bench/run_cpu_comparison.sh (keras_tutorial.py is the other).

  .peers-venv/bin/python bench/peers/pytorch_tutorial.py --preset mnist-digit-parity \
      --batch-size 128 --epochs 2 --threads 2 [--limit 2000]

Keras' semantics, spelled out in PyTorch: NCHW float32 images / 255; Glorot-uniform weights and
zero biases (torch's default init is Kaiming-uniform); BatchNorm2d(momentum=0.01, eps=1e-3),
which is Keras' momentum 0.99 in torch's convention; Dropout(0.3); heads linear, cross-entropy
on the logits (= Keras' softmax + sparse categorical cross-entropy) or MSE; the loss the sum of
weight x task loss; Adam(lr=1e-3, eps=1e-7) with torch's default CPU implementation; the last
10 % of the training set held out for validation, as Keras' validation_split takes it; a fresh
permutation of the training rows every epoch, each batch gathered from the in-memory tensors by
index (the quick way for data that fits in memory; a DataLoader over a TensorDataset would add
per-example Python work). torch.set_num_threads(--threads).

Output as keras_tutorial.py: "info", then an "epoch" record per epoch (training and the
validation pass, timed together), then --test-passes "test" records (the test set in batches
under torch.no_grad(), model.eval()).
"""
import argparse
import os
import platform
import sys
import time

from peer_workload import (PRESETS, check_arguments, check_preset_toml, common_arguments, emit,
                           fail, load_split, validation_rows)

PROGRAM = "pytorch_tutorial.py"


def parse_args():
    parser = common_arguments(argparse.ArgumentParser(description=__doc__.split("\n\n")[0]))
    args = parser.parse_args()
    check_arguments(parser, args)
    return args


def build_model(torch, preset_name):
    nn = torch.nn
    F = nn.functional
    preset = PRESETS[preset_name]

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 3)
            self.conv2 = nn.Conv2d(32, 64, 3)
            bn = preset.batch_norm
            self.bn1 = nn.BatchNorm2d(32, eps=1e-3, momentum=0.01) if bn else nn.Identity()
            self.bn2 = nn.BatchNorm2d(64, eps=1e-3, momentum=0.01) if bn else nn.Identity()
            self.shared = nn.Linear(64 * 5 * 5, 128)
            # A list, not a ModuleDict: "type" (a head's name) is taken on nn.Module.
            self.head_names = [task.name for task in preset.tasks]
            self.heads = nn.ModuleList(
                nn.Sequential(nn.Linear(128, preset.head_hidden), nn.ReLU(),
                              nn.Dropout(preset.dropout), nn.Linear(preset.head_hidden, task.units))
                if preset.head_hidden else nn.Linear(128, task.units)
                for task in preset.tasks)
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
            x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
            shared = F.relu(self.shared(x.flatten(1)))
            return {name: head(shared) for name, head in zip(self.head_names, self.heads)}

    return Net()


class Totals:
    """Example-weighted sums of each task's loss and metric over an epoch or a pass, reported
    with polytask's key names (loss, <task>_loss, <task>_<metric>; val_/test_ prefixes)."""

    def __init__(self, tasks):
        self.tasks = tasks
        self.loss = {t.name: 0.0 for t in tasks}
        self.metric = {t.name: 0.0 for t in tasks}
        self.examples = 0

    def add(self, torch, outputs, labels, losses):
        n = len(next(iter(labels.values())))
        self.examples += n
        with torch.no_grad():
            for t in self.tasks:
                self.loss[t.name] += float(losses[t.name]) * n
                out, y = outputs[t.name], labels[t.name]
                if t.metric == "accuracy":
                    self.metric[t.name] += float((out.argmax(1) == y).sum())
                else:  # mae
                    self.metric[t.name] += float((out - y).abs().sum())

    def record(self, prefix=""):
        n = max(self.examples, 1)
        out = {prefix + "loss": sum(t.weight * self.loss[t.name] / n for t in self.tasks)}
        for t in self.tasks:
            out[f"{prefix}{t.name}_loss"] = self.loss[t.name] / n
            out[f"{prefix}{t.name}_{t.metric}"] = self.metric[t.name] / n
        return out


def task_losses(F, tasks, outputs, labels):
    return {t.name: (F.cross_entropy(outputs[t.name], labels[t.name])
                     if t.loss == "softmax_cross_entropy"
                     else F.mse_loss(outputs[t.name], labels[t.name])) for t in tasks}


def evaluate(torch, model, tasks, images, labels, batch):
    F = torch.nn.functional
    totals = Totals(tasks)
    model.eval()
    with torch.no_grad():
        for begin in range(0, len(images), batch):
            x = images[begin:begin + batch]
            y = {k: v[begin:begin + batch] for k, v in labels.items()}
            outputs = model(x)
            totals.add(torch, outputs, y, task_losses(F, tasks, outputs, y))
    model.train()
    return totals


def main():
    args = parse_args()
    check_preset_toml(PROGRAM, args.preset)
    # Before torch is imported: its OpenMP and MKL pools size themselves from these.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    try:
        import torch
    except ImportError as e:
        fail(PROGRAM, f"{e} (with {sys.executable}): run bench/peers/setup_venv.sh")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    F = torch.nn.functional
    tasks = PRESETS[args.preset].tasks

    def tensors(split):
        images, labels = load_split(PROGRAM, args.data, split, args.preset, args.limit)
        return (torch.from_numpy(images).unsqueeze(1),  # (N, 1, 28, 28)
                {k: torch.from_numpy(v) for k, v in labels.items()})

    x_all, y_all = tensors("train")
    x_test, y_test = tensors("test")
    val_rows = validation_rows(len(x_all), args.val_split)
    train_rows = len(x_all) - val_rows
    x_train, x_val = x_all[:train_rows], x_all[train_rows:]
    y_train = {k: v[:train_rows] for k, v in y_all.items()}
    y_val = {k: v[train_rows:] for k, v in y_all.items()}

    model = build_model(torch, args.preset)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
    emit({"peer": "pytorch", "phase": "info", "preset": args.preset, "batch": args.batch_size,
          "torch": torch.__version__, "python": platform.python_version(),
          "cpu_capability": torch.backends.cpu.get_cpu_capability(),
          "mkldnn": torch.backends.mkldnn.is_available(),
          "blas": "mkl" if torch.backends.mkl.is_available() else "other",
          "threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
          "parameters": sum(p.numel() for p in model.parameters()),
          "train_rows": train_rows, "validation_rows": val_rows, "test_rows": len(x_test)})

    order = torch.Generator().manual_seed(args.seed)
    model.train()
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        totals = Totals(tasks)
        permutation = torch.randperm(train_rows, generator=order)
        for begin in range(0, train_rows, args.batch_size):
            rows = permutation[begin:begin + args.batch_size]
            x = x_train[rows]
            y = {k: v[rows] for k, v in y_train.items()}
            outputs = model(x)
            losses = task_losses(F, tasks, outputs, y)
            loss = sum(t.weight * losses[t.name] for t in tasks)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            totals.add(torch, outputs, y, losses)
        record = totals.record()
        if val_rows:
            record.update(evaluate(torch, model, tasks, x_val, y_val, args.batch_size).record("val_"))
        seconds = time.perf_counter() - start
        emit({"peer": "pytorch", "phase": "epoch", "preset": args.preset,
              "batch": args.batch_size, "epoch": epoch, "seconds": seconds, **record})

    for test_pass in range(1, args.test_passes + 1):
        start = time.perf_counter()
        totals = evaluate(torch, model, tasks, x_test, y_test, args.batch_size)
        seconds = time.perf_counter() - start
        emit({"peer": "pytorch", "phase": "test", "preset": args.preset, "batch": args.batch_size,
              "pass": test_pass, "seconds": seconds, "examples": totals.examples,
              **totals.record("test_")})


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        fail(PROGRAM, "interrupted")
