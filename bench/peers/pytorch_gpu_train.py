#!/usr/bin/env python3
"""PyTorch GPU peer of polytask_train_bench (bench/gpu_train_bench.cpp): whole training epochs
of the mnist-digit-parity model on Fashion-MNIST, on the same GPU, in one of three modes:

  eager    a plain PyTorch loop (index the batch on the device, forward, both losses,
           backward, Adam) - what most PyTorch code is;
  graphs   the whole training step (batch gather from static index buffers, forward, both
           losses, backward, Adam with capturable=True) captured once with torch.cuda.graph and
           replayed; a short last batch runs eagerly into the same buffers;
  compile  torch.compile (mode reduce-overhead by default, --compile-mode to change) of the
           gather + forward + losses, backward through the compiled graph, and a compiled
           Adam step; a compile failure is reported as a JSON "error" record, not a traceback.

Only the mnist-digit-parity preset (--preset accepts nothing else). The model mirrors
models/configs/mnist-digit-parity.toml exactly and the script checks that file when it can
(Python 3.11+ tomllib): Conv32-3x3-ReLU (padding 'valid') -> MaxPool2 -> Conv64-3x3-ReLU ->
MaxPool2 -> Flatten -> Dense128-ReLU -> heads Dense10 "digit" (softmax CE, weight 1.0) and
Dense2 "parity" (softmax CE on class % 2, weight 0.5); Glorot-uniform kernels, zero biases
(polytask's and Keras' initialisation); Adam lr 1e-3, betas 0.9/0.999, eps 1e-7; pixels / 255.

Data: the IDX files (.gz or raw) of a directory, parsed with numpy/gzip (no torchvision, no
download), uploaded to the device once; every batch is indexed on the device from a per-epoch
permutation made on the device - the same data path as polytask's (engine/device_data.h).

Precision: fp32 (TF32 off for cuBLAS and cuDNN, float32 matmul precision "highest"), tf32
(allow_tf32 on for both), bf16 (torch.autocast bfloat16 around forward and losses; TF32 off).

Output: JSON lines in polytask_train_bench's schema with "mode" added: one "epoch" record per
epoch and a "summary" record (first epoch apart from the steady ones; time to --target test
accuracy of "digit", measured from just before the data upload, including graph capture or
compilation and every test evaluation). --device cpu runs the eager mode on the CPU, for a smoke
test of the argument parsing, data loading and model construction without a GPU.
"""
import argparse
import gzip
import json
import math
import os
import statistics
import struct
import sys
import time

try:
    import numpy as np
except ImportError:  # pragma: no cover
    sys.exit("pytorch_gpu_train.py: numpy is not importable by " + sys.executable)
try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    sys.exit("pytorch_gpu_train.py: torch is not importable by " + sys.executable +
             " (on Debian: python3-torch and /usr/bin/python3)")

PRESET = "mnist-digit-parity"
HERE = os.path.dirname(os.path.abspath(__file__))
PRESET_TOML = os.path.join(HERE, "..", "..", "models", "configs", PRESET + ".toml")
DEFAULT_DATA = "/usr/share/datasets/fashion-mnist"


class UsageError(Exception):
    pass


# ---------------------------------------------------------------- the model, checked against the preset

# What this script builds, layer by layer, as the preset's TOML must say it.
EXPECTED_LAYERS = [
    ("conv1", {"type": "conv2d", "input": "image", "filters": 32, "kernel": 3, "activation": "relu"}),
    ("pool1", {"type": "max_pool2d", "input": "conv1", "pool": 2}),
    ("conv2", {"type": "conv2d", "input": "pool1", "filters": 64, "kernel": 3, "activation": "relu"}),
    ("pool2", {"type": "max_pool2d", "input": "conv2", "pool": 2}),
    ("flatten", {"type": "flatten", "input": "pool2"}),
    ("shared", {"type": "dense", "input": "flatten", "units": 128, "activation": "relu"}),
    ("digit", {"type": "dense", "input": "shared", "units": 10}),
    ("parity", {"type": "dense", "input": "shared", "units": 2}),
]
# Keys whose absence means the default this script assumes.
LAYER_DEFAULTS = {"padding": "valid", "stride": None, "use_bias": True}


def preset_loss_weights(path=PRESET_TOML):
    """The tasks' loss weights from the preset's TOML, after checking that its layers and tasks
    are the ones this script builds. Returns (weights, note)."""
    fallback = {"digit": 1.0, "parity": 0.5}
    try:
        import tomllib
    except ImportError:
        return fallback, f"preset not checked (no tomllib in Python {sys.version.split()[0]})"
    if not os.path.exists(path):
        return fallback, f"preset not checked ({path} missing)"
    with open(path, "rb") as f:
        config = tomllib.load(f)
    layers = config.get("layers", [])
    problems = []
    if [l.get("name") for l in layers] != [name for name, _ in EXPECTED_LAYERS]:
        problems.append("layer names " + str([l.get("name") for l in layers]))
    for layer, (name, expected) in zip(layers, EXPECTED_LAYERS):
        for key, value in expected.items():
            if layer.get(key) != value:
                problems.append(f"{name}.{key} = {layer.get(key)!r}, expected {value!r}")
        for key, default in LAYER_DEFAULTS.items():
            if key in layer and layer[key] not in (default, 1 if key == "stride" else default):
                problems.append(f"{name}.{key} = {layer[key]!r}, expected {default!r}")
        extra = set(layer) - set(expected) - set(LAYER_DEFAULTS) - {"name"}
        if extra:
            problems.append(f"{name} has unexpected keys {sorted(extra)}")
    tasks = {t.get("name"): t for t in config.get("tasks", [])}
    weights = {}
    for task, label in (("digit", "class"), ("parity", "parity")):
        t = tasks.get(task)
        if t is None:
            problems.append(f"no task {task}")
            continue
        if t.get("loss") != "softmax_cross_entropy" or t.get("label", task) != label:
            problems.append(f"task {task}: loss {t.get('loss')!r}, label {t.get('label')!r}")
        weights[task] = float(t.get("weight", 1.0))
    if set(tasks) != {"digit", "parity"}:
        problems.append(f"tasks {sorted(tasks)}")
    if problems:
        raise SystemExit("pytorch_gpu_train.py: " + path + " no longer describes the model this "
                         "peer builds; update the peer: " + "; ".join(problems))
    return weights, "preset checked against " + os.path.relpath(path)


class DigitParity(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)     # padding 0 = 'valid'
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.shared = nn.Linear(64 * 5 * 5, 128)
        self.digit = nn.Linear(128, 10)
        self.parity = nn.Linear(128, 2)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)  # Glorot-uniform, fan in/out as Keras
                nn.init.zeros_(m.bias)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        z = F.relu(self.shared(torch.flatten(h, 1)))
        return self.digit(z), self.parity(z)


# ---------------------------------------------------------------- data

def read_idx(path):
    with (gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")) as f:
        data = f.read()
    if len(data) < 8:
        raise SystemExit(f"pytorch_gpu_train.py: {path}: truncated IDX file")
    magic, = struct.unpack(">I", data[:4])
    if magic >> 8 != 0x08:  # unsigned bytes
        raise SystemExit(f"pytorch_gpu_train.py: {path}: not an unsigned-byte IDX file (magic {magic:#x})")
    rank = magic & 0xFF
    dims = struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank])
    array = np.frombuffer(data, np.uint8, offset=4 + 4 * rank)
    if array.size != math.prod(dims):
        raise SystemExit(f"pytorch_gpu_train.py: {path}: {array.size} bytes of data for shape {dims}")
    return array.reshape(dims)


def load_idx_dir(data_dir, limit):
    def pick(stem):
        for name in (stem + ".gz", stem):
            p = os.path.join(data_dir, name)
            if os.path.exists(p):
                return p
        raise SystemExit(f"pytorch_gpu_train.py: no {stem}[.gz] in {data_dir}")
    x = read_idx(pick("train-images-idx3-ubyte"))
    y = read_idx(pick("train-labels-idx1-ubyte"))
    tx = read_idx(pick("t10k-images-idx3-ubyte"))
    ty = read_idx(pick("t10k-labels-idx1-ubyte"))
    if limit:
        x, y, tx, ty = x[:limit], y[:limit], tx[:limit], ty[:limit]
    if x.shape[1:] != (28, 28) or len(x) != len(y) or len(tx) != len(ty):
        raise SystemExit(f"pytorch_gpu_train.py: {data_dir}: unexpected shapes {x.shape} {y.shape} "
                         f"{tx.shape} {ty.shape}")
    return x, y, tx, ty


class DeviceData:
    """Images (N, 1, 28, 28) float32 in [0, 1], class and parity labels (int64), on the device."""

    def __init__(self, images, labels, device):
        raw = torch.from_numpy(np.array(images, copy=True)).to(device, non_blocking=False)
        self.x = (raw.to(torch.float32) / 255.0).unsqueeze(1).contiguous()
        self.digit = torch.from_numpy(labels.astype(np.int64)).to(device)
        self.parity = self.digit % 2
        self.n = len(labels)


# ---------------------------------------------------------------- precision

def set_tf32(enabled):
    """TF32 for cuBLAS and cuDNN on or off. PyTorch 2.9+ has the fp32_precision settings and
    raises when they are mixed with the legacy allow_tf32 flags, so only one API is used: the
    new one where it exists. cuDNN's TF32 is on by default, so FP32 must turn it off. Returns
    what was set, for the notes."""
    value = "tf32" if enabled else "ieee"
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        for owner in (torch.backends, torch.backends.cuda.matmul, torch.backends.cudnn,
                      getattr(torch.backends.cudnn, "conv", None),
                      getattr(torch.backends.cudnn, "rnn", None)):
            if owner is not None and hasattr(owner, "fp32_precision"):
                owner.fp32_precision = value
        return f"fp32_precision={value} (cuBLAS, cuDNN)"
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
    torch.set_float32_matmul_precision("high" if enabled else "highest")
    return f"allow_tf32={enabled} (cuBLAS, cuDNN)"


def set_precision(precision, device):
    if device != "cuda":
        return "cpu"
    return set_tf32(precision == "tf32")


def autocast(precision, device):
    if precision == "bf16":
        # cache_enabled=False: required inside CUDA-graph capture, harmless elsewhere.
        return torch.autocast(device_type=device, dtype=torch.bfloat16, cache_enabled=False)
    return torch.autocast(device_type=device, enabled=False)


# ---------------------------------------------------------------- training

class Run:
    def __init__(self, args, weights):
        self.args = args
        self.device = args.device
        self.w_digit, self.w_parity = weights["digit"], weights["parity"]
        torch.manual_seed(args.seed)
        self.model = DigitParity().to(self.device)
        self.params = list(self.model.parameters())
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(args.seed)
        self.notes = []
        adam = dict(lr=args.lr, betas=(0.9, 0.999), eps=1e-7)
        if args.mode == "graphs":
            adam["capturable"] = True  # step counts on the device: the step can be captured
            self.notes.append("Adam capturable=True")
        elif args.adam != "default":
            adam[args.adam] = True
            self.notes.append(f"Adam {args.adam}=True")
        self.opt = torch.optim.Adam(self.params, **adam)

    def weighted_loss(self, data, idx):
        x = data.x.index_select(0, idx)
        with autocast(self.args.precision, self.device):
            out_digit, out_parity = self.model(x)
            return (self.w_digit * F.cross_entropy(out_digit.float(), data.digit.index_select(0, idx)) +
                    self.w_parity * F.cross_entropy(out_parity.float(), data.parity.index_select(0, idx)))

    # eager: the plain loop
    def eager_step(self, data, idx):
        loss = self.weighted_loss(data, idx)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach()

    # graphs: capture once (after warm-up steps whose effect on the model is undone)
    def capture(self, data):
        b = self.args.batch_size
        self.static_idx = torch.arange(b, device=self.device) % data.n
        self.loss_acc = torch.zeros((), device=self.device)
        saved = [p.detach().clone() for p in self.params]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):  # warm-up on a side stream, as torch.cuda.graphs asks
                self.eager_step(data, self.static_idx)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        self.opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.graph):
            loss = self.weighted_loss(data, self.static_idx)
            loss.backward()
            self.opt.step()
            self.loss_acc.add_(loss.detach(), alpha=b)
        # Undo the warm-up: the same start as the other modes (fresh Adam, initial weights).
        with torch.no_grad():
            for p, s in zip(self.params, saved):
                p.copy_(s)
            for state in self.opt.state.values():
                for key in ("exp_avg", "exp_avg_sq", "step"):
                    state[key].zero_()
        torch.cuda.synchronize()

    def graph_step(self, data, idx):
        n = idx.numel()
        if n == self.args.batch_size:
            self.static_idx.copy_(idx)
            self.graph.replay()
        else:  # the short last batch: eagerly, into the graph's own gradient buffers
            loss = self.weighted_loss(data, idx)
            self.opt.zero_grad(set_to_none=False)
            loss.backward()
            self.opt.step()
            self.loss_acc.add_(loss.detach(), alpha=n)

    # compile
    def build_compiled(self, datasets):
        mode = self.args.compile_mode
        # The data tensors stay where they are: without this, CUDA-graph trees (reduce-overhead)
        # would copy every non-parameter input - the whole data set - into their own buffers at
        # every replay.
        mark_static = getattr(getattr(torch, "_dynamo", None), "mark_static_address", None)
        if mark_static is not None:
            for d in datasets:
                for t in (d.x, d.digit, d.parity):
                    mark_static(t)
            self.notes.append("data tensors marked static (torch._dynamo.mark_static_address)")
        # dynamic=False: the short last batch gets its own static graph instead of turning the
        # full-batch graph into a dynamic-shape one.
        self.compiled_loss = torch.compile(self.weighted_loss, mode=None if mode == "default" else mode,
                                           dynamic=False)
        self.notes.append(f"torch.compile mode={mode} (gather+forward+losses; backward compiled)")
        self.opt_step = None
        if not self.args.no_compile_optimizer:
            # PyTorch's recipe for a compiled optimizer: a function calling step(), compiled
            # with the default mode (Inductor fuses Adam's foreach kernels).
            opt = self.opt

            def adam_step():
                opt.step()

            self.opt_step = torch.compile(adam_step)
            self.notes.append("Adam step compiled (torch.compile default mode)")
        self.mark_step = getattr(getattr(torch, "compiler", None), "cudagraph_mark_step_begin", None)

    def compiled_step(self, data, idx):
        if self.mark_step is not None and self.args.compile_mode == "reduce-overhead":
            self.mark_step()
        # A fresh tensor at offset 0: a slice of the permutation would differ from step to step
        # in its storage offset, which a compiled graph may guard on (a recompile per step).
        loss = self.compiled_loss(data, idx.clone())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.opt_step is not None:
            try:
                self.opt_step()
            except Exception as e:  # compiled optimizer failed: eager from here on
                self.opt_step = None
                self.notes.append(f"compiled Adam step failed ({type(e).__name__}: "
                                  f"{str(e).splitlines()[0][:160] if str(e) else ''}); eager Adam step")
                self.opt.step()
        else:
            self.opt.step()
        return loss.detach()

    # one epoch; returns (seconds, mean weighted train loss)
    def epoch(self, data):
        b = self.args.batch_size
        sync()
        start = time.perf_counter()
        perm = torch.randperm(data.n, device=self.device, generator=self.gen)
        if self.args.mode == "graphs":
            self.loss_acc.zero_()
            for begin in range(0, data.n, b):
                self.graph_step(data, perm[begin:begin + b])
            loss_sum = self.loss_acc
        else:
            step = self.compiled_step if self.args.mode == "compile" else self.eager_step
            loss_sum = torch.zeros((), device=self.device)
            for begin in range(0, data.n, b):
                idx = perm[begin:begin + b]
                loss_sum.add_(step(data, idx), alpha=idx.numel())
        mean = loss_sum.item() / data.n  # waits for the device
        return time.perf_counter() - start, mean

    @torch.no_grad()
    def evaluate(self, data):
        b = self.args.batch_size
        correct_d = torch.zeros((), dtype=torch.int64, device=self.device)
        correct_p = torch.zeros((), dtype=torch.int64, device=self.device)
        loss_sum = torch.zeros((), device=self.device)
        for begin in range(0, data.n, b):
            idx = torch.arange(begin, min(begin + b, data.n), device=self.device)
            x = data.x.index_select(0, idx)
            yd, yp = data.digit.index_select(0, idx), data.parity.index_select(0, idx)
            with autocast(self.args.precision, self.device):
                od, op = self.model(x)
            od, op = od.float(), op.float()
            loss_sum += (self.w_digit * F.cross_entropy(od, yd, reduction="sum") +
                         self.w_parity * F.cross_entropy(op, yp, reduction="sum"))
            correct_d += (od.argmax(1) == yd).sum()
            correct_p += (op.argmax(1) == yp).sum()
        values = torch.stack([correct_d.double(), correct_p.double(), loss_sum.double()]).tolist()
        return {"digit": values[0] / data.n, "parity": values[1] / data.n}, values[2] / data.n


def sync():
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def first_line(e):
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:300] if text else ''}"


def main():
    p = argparse.ArgumentParser(
        description="PyTorch peer of polytask_train_bench: the mnist-digit-parity model trained "
                    "on Fashion-MNIST on the GPU in eager, CUDA-graph or torch.compile mode; "
                    "JSON lines on stdout.",
        epilog="Only --preset mnist-digit-parity. See bench/README.md, 'End-to-end GPU training "
               "benchmark'.")
    p.add_argument("--preset", default=PRESET, help="only mnist-digit-parity")
    p.add_argument("--data", default=DEFAULT_DATA, help="directory of the IDX files (.gz or raw)")
    p.add_argument("--mode", default="eager", choices=["eager", "graphs", "compile"])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16"])
    p.add_argument("--target", type=float, default=0.9,
                   help="test accuracy of 'digit' for time_to_target_s (0: do not report)")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                   help="cpu: eager mode only, for a smoke test without a GPU")
    p.add_argument("--limit", type=int, default=0, help="first N examples of each split (0: all)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compile-mode", default="reduce-overhead",
                   choices=["reduce-overhead", "max-autotune-no-cudagraphs", "default",
                            "max-autotune"])
    p.add_argument("--no-compile-optimizer", action="store_true",
                   help="compile mode: run the Adam step eagerly")
    p.add_argument("--adam", default="default", choices=["default", "foreach", "fused"],
                   help="eager/compile: Adam implementation (default: PyTorch's choice)")
    p.add_argument("--no-cudnn-benchmark", action="store_true",
                   help="leave torch.backends.cudnn.benchmark off (default: on)")
    p.add_argument("--no-eval", action="store_true", help="no test evaluation after each epoch")
    args = p.parse_args()

    identity = {"impl": "pytorch", "mode": args.mode, "preset": args.preset, "data": args.data,
                "device": args.device, "batch": args.batch_size, "precision": args.precision}

    def emit(record, **fields):
        print(json.dumps({"record": record, **identity, **fields}), flush=True)

    def error(message, code):
        emit("error", error=message, torch_version=torch.__version__)
        print(f"pytorch_gpu_train.py: {args.mode}: {message}", file=sys.stderr)
        sys.exit(code)

    if args.preset != PRESET:
        error(f"--preset {args.preset}: this peer builds only {PRESET}", 2)
    if args.epochs < 1 or args.batch_size < 1 or args.limit < 0 or not 0 <= args.target <= 1:
        error("--epochs and --batch-size must be >= 1, --limit >= 0, --target in [0, 1]", 2)
    if args.device == "cuda" and not torch.cuda.is_available():
        error("--device cuda: torch.cuda.is_available() is False (no GPU or no CUDA build of "
              "torch); --device cpu runs the eager smoke test", 1)
    if args.device == "cpu" and args.mode == "graphs":
        error("graphs mode needs CUDA (torch.cuda.graph)", 2)
    if args.mode == "compile" and not hasattr(torch, "compile"):
        error(f"torch.compile is not available in torch {torch.__version__}", 3)
    if args.device == "cpu" and args.precision == "tf32":
        error("tf32 is a GPU setting", 2)

    weights, preset_note = preset_loss_weights()
    precision_note = set_precision(args.precision, args.device)
    torch.backends.cudnn.benchmark = not args.no_cudnn_benchmark and args.device == "cuda"

    load_start = time.perf_counter()
    x, y, tx, ty = load_idx_dir(args.data, args.limit)
    load_s = time.perf_counter() - load_start

    run = Run(args, weights)  # model on the device: CUDA context made before the clock starts
    sync()
    t0 = time.perf_counter()
    train = DeviceData(x, y, args.device)
    test = DeviceData(tx, ty, args.device)
    try:
        if args.mode == "graphs":
            run.capture(train)
        elif args.mode == "compile":
            run.build_compiled([train, test])
    except Exception as e:
        error(f"{'capture' if args.mode == 'graphs' else 'compile'} failed: {first_line(e)}", 3)
    sync()
    setup_s = time.perf_counter() - t0

    gpu = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(f"pytorch_gpu_train.py: torch {torch.__version__} on {gpu}; {args.mode}, batch "
          f"{args.batch_size}, {args.precision}, {args.epochs} epochs of {train.n} images; "
          f"{preset_note}", file=sys.stderr)

    epoch_seconds, time_to_target, train_s_to_target, target_epoch = [], None, None, None
    accuracy, eval_total, train_loss = {}, 0.0, float("nan")
    for epoch in range(1, args.epochs + 1):
        try:
            seconds, train_loss = run.epoch(train)
        except Exception as e:
            if args.mode == "compile" and epoch == 1:
                error(f"compile failed: {first_line(e)}", 3)
            raise
        epoch_seconds.append(seconds)
        test_loss, eval_s = float("nan"), float("nan")
        if not args.no_eval:
            e0 = time.perf_counter()
            accuracy, test_loss = run.evaluate(test)
            eval_s = time.perf_counter() - e0
            eval_total += eval_s
        elapsed = time.perf_counter() - t0
        if (not args.no_eval and args.target > 0 and time_to_target is None and
                accuracy["digit"] >= args.target):
            time_to_target, target_epoch = elapsed, epoch
            train_s_to_target = sum(epoch_seconds)
        emit("epoch", epoch=epoch, epochs=args.epochs, warmup=epoch == 1, epoch_s=seconds,
             train_images=train.n, images_per_s=train.n / seconds, train_loss=finite(train_loss),
             test_accuracy=None if args.no_eval else accuracy,
             test_metrics=None if args.no_eval else {}, test_loss=finite(test_loss),
             eval_s=finite(eval_s), elapsed_s=elapsed)

    steady = epoch_seconds[1:]
    steady_s = statistics.median(steady) if steady else None
    emit("summary", epochs=args.epochs, train_images=train.n, test_images=test.n,
         parameters=sum(p.numel() for p in run.params), load_s=load_s, setup_s=setup_s,
         first_epoch_s=epoch_seconds[0], steady_epoch_s=steady_s,
         steady_epoch_s_min=min(steady) if steady else None,
         steady_images_per_s=train.n / steady_s if steady_s else None,
         eval_s_total=None if args.no_eval else eval_total,
         total_s=time.perf_counter() - t0, target=args.target,
         target_task="digit", time_to_target_s=time_to_target,
         train_s_to_target=train_s_to_target, target_epoch=target_epoch,
         final_train_loss=finite(train_loss),
         final_test_accuracy=None if args.no_eval else accuracy,
         torch_version=torch.__version__, gpu=gpu,
         cudnn_benchmark=torch.backends.cudnn.benchmark,
         compile_mode=args.compile_mode if args.mode == "compile" else None,
         notes="; ".join([preset_note, precision_note] + run.notes))


def finite(v):
    return v if v is not None and math.isfinite(v) else None


if __name__ == "__main__":
    main()
