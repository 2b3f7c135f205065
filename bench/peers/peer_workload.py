"""What the CPU peers (keras_tutorial.py, pytorch_tutorial.py) train, shared so that both train
exactly what `polytask train` does:

* the two presets' architectures, written out once and checked against
  models/configs/<preset>.toml at start (a drifted preset stops the peer instead of timing
  another model);
* Fashion-MNIST read from the IDX .gz files with gzip + numpy, pixels / 255 in float32 as
  datasets/idx.cpp does, with the labels polytask derives (datasets/labels.cpp): "class" as
  given, "parity" = class % 2, "brightness" = the image's mean pixel (summed in double);
* the JSON lines both peers print.

Standard library and numpy only.
"""
import gzip
import json
import os
import struct
import sys
from dataclasses import dataclass

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = os.path.join(HERE, "..", "..", "models", "configs")
DEFAULT_DATA = "/usr/share/datasets/fashion-mnist"


@dataclass(frozen=True)
class Task:
    name: str     # the output / head name, as in the preset
    label: str    # the label source: class, parity or brightness
    units: int    # the head's output width
    loss: str     # softmax_cross_entropy or mse
    weight: float
    metric: str   # accuracy or mae


@dataclass(frozen=True)
class Preset:
    batch_norm: bool        # Conv -> BN -> ReLU instead of Conv(relu)
    head_hidden: int        # 0: the head is one Dense; else Dense(head_hidden, relu) -> Dropout
    dropout: float
    tasks: tuple
    layers: tuple           # the preset's [[layers]] as (name, type, size, activation)


# Each layer as (name, type, filters/units/pool/rate, activation or ""), in the TOML's order.
PRESETS = {
    "mnist-digit-parity": Preset(
        batch_norm=False, head_hidden=0, dropout=0.0,
        tasks=(Task("digit", "class", 10, "softmax_cross_entropy", 1.0, "accuracy"),
               Task("parity", "parity", 2, "softmax_cross_entropy", 0.5, "accuracy")),
        layers=(("conv1", "conv2d", 32, "relu"), ("pool1", "max_pool2d", 2, ""),
                ("conv2", "conv2d", 64, "relu"), ("pool2", "max_pool2d", 2, ""),
                ("flatten", "flatten", 0, ""), ("shared", "dense", 128, "relu"),
                ("digit", "dense", 10, ""), ("parity", "dense", 2, ""))),
    "fashion-type-brightness": Preset(
        batch_norm=True, head_hidden=64, dropout=0.3,
        tasks=(Task("type", "class", 10, "softmax_cross_entropy", 1.0, "accuracy"),
               Task("brightness", "brightness", 1, "mse", 1.0, "mae")),
        layers=(("conv1", "conv2d", 32, ""), ("bn1", "batch_norm", 0, ""),
                ("relu1", "relu", 0, ""), ("pool1", "max_pool2d", 2, ""),
                ("conv2", "conv2d", 64, ""), ("bn2", "batch_norm", 0, ""),
                ("relu2", "relu", 0, ""), ("pool2", "max_pool2d", 2, ""),
                ("flatten", "flatten", 0, ""), ("shared", "dense", 128, "relu"),
                ("type_hidden", "dense", 64, "relu"), ("type_dropout", "dropout", 0.3, ""),
                ("type", "dense", 10, ""),
                ("brightness_hidden", "dense", 64, "relu"),
                ("brightness_dropout", "dropout", 0.3, ""), ("brightness", "dense", 1, ""))),
}


def fail(program, message):
    sys.exit(f"{program}: error: {message}")


def check_preset_toml(program, name):
    """Stops the peer when models/configs/<name>.toml no longer describes the model written
    above (layers, kernel 3 / 'valid' padding / stride 1 / BatchNorm defaults, tasks)."""
    import tomllib  # Python 3.11+, as in the venv
    path = os.path.join(CONFIGS, name + ".toml")
    try:
        with open(path, "rb") as f:
            config = tomllib.load(f)
    except OSError as e:
        fail(program, f"cannot read the preset's config {path}: {e.strerror}")
    size_key = {"conv2d": "filters", "dense": "units", "max_pool2d": "pool", "dropout": "rate"}
    found = []
    for layer in config.get("layers", []):
        kind = layer.get("type", "")
        found.append((layer.get("name"), kind, layer.get(size_key.get(kind, ""), 0),
                      layer.get("activation", "")))
        if kind == "conv2d" and (layer.get("kernel") != 3 or layer.get("padding", "valid") != "valid"
                                 or layer.get("stride", 1) != 1):
            fail(program, f"{path}: layer {layer.get('name')} is no longer a 3x3 'valid' stride-1 conv")
        if kind == "batch_norm" and (layer.get("momentum", 0.99) != 0.99
                                     or layer.get("epsilon", 1e-3) != 1e-3):
            fail(program, f"{path}: layer {layer.get('name')} sets BatchNorm momentum/epsilon")
    if tuple(found) != PRESETS[name].layers:
        fail(program, f"{path}: the layers differ from the peer's model; update bench/peers/"
                      f"peer_workload.py (found {found})")
    tasks = tuple(Task(t["name"], t.get("label", ""), 0, t.get("loss", ""), float(t.get("weight", 1.0)),
                       ",".join(t.get("metrics", [])))
                  for t in config.get("tasks", []))
    expected = tuple(Task(t.name, t.label, 0, t.loss, t.weight, t.metric) for t in PRESETS[name].tasks)
    if tasks != expected:
        fail(program, f"{path}: the tasks differ from the peer's; update bench/peers/"
                      f"peer_workload.py (found {tasks})")


# ---------------------------------------------------------------- Fashion-MNIST

FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(program, directory, stem, limit):
    """The first `limit` rows (0: all) of an IDX file, .gz or raw, as a uint8 array."""
    for path, opener in ((os.path.join(directory, stem + ".gz"), gzip.open),
                         (os.path.join(directory, stem), open)):
        if os.path.exists(path):
            break
    else:
        fail(program, f"no {stem}[.gz] in {directory}")
    with opener(path, "rb") as f:
        zero, dtype, rank = struct.unpack(">HBB", f.read(4))
        if zero != 0 or dtype != 0x08:
            fail(program, f"{path}: not an unsigned-byte IDX file")
        dims = struct.unpack(">" + "I" * rank, f.read(4 * rank))
        rows = dims[0] if limit <= 0 else min(dims[0], limit)
        per_row = int(np.prod(dims[1:], dtype=np.int64))
        data = np.frombuffer(f.read(rows * per_row), dtype=np.uint8)
    if data.size != rows * per_row:
        fail(program, f"{path}: truncated")
    return data.reshape((rows,) + tuple(dims[1:]))


def targets(preset, images, classes):
    """{task name: labels} as polytask derives them; images are float32 (N, 28, 28)."""
    out = {}
    for task in PRESETS[preset].tasks:
        if task.label == "class":
            out[task.name] = classes.astype(np.int64)
        elif task.label == "parity":
            out[task.name] = (classes % 2).astype(np.int64)
        else:  # brightness: mean pixel, summed in double, stored as float32 (N, 1)
            flat = images.reshape(len(images), -1).astype(np.float64)
            out[task.name] = (flat.sum(axis=1) / flat.shape[1]).astype(np.float32)[:, None]
    return out


def load_split(program, directory, split, preset, limit):
    """(images float32 (N, 28, 28) in [0, 1], {task: labels}) for "train" or "test"."""
    images_stem, labels_stem = FILES[split]
    raw = read_idx(program, directory, images_stem, limit)
    classes = read_idx(program, directory, labels_stem, limit)
    if len(raw) != len(classes):
        fail(program, f"{directory}: {split} has {len(raw)} images but {len(classes)} labels")
    images = raw.astype(np.float32) / np.float32(255)
    return images, targets(preset, images, classes)


def validation_rows(total, split):
    """Rows held out for validation, from the end, as polytask (int(total * split)) and Keras
    (total - floor(total * (1 - split))) take them; the two agree for the sizes used here."""
    return int(total * split)


def emit(record):
    print(json.dumps(record), flush=True)


def common_arguments(parser):
    parser.add_argument("--preset", choices=sorted(PRESETS), default="mnist-digit-parity")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="CPU threads for the framework's kernels")
    parser.add_argument("--limit", type=int, default=0,
                        help="use at most N examples of each split, as polytask train --limit "
                             "(0: all; for smoke tests)")
    parser.add_argument("--val-split", type=float, default=0.1)
    parser.add_argument("--test-passes", type=int, default=2,
                        help="time the test pass this many times (the first carries warm-up)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=DEFAULT_DATA, help="directory of the IDX files")
    return parser


def check_arguments(parser, args):
    if args.batch_size < 1 or args.epochs < 1 or args.threads < 1 or args.limit < 0 \
            or args.test_passes < 1 or not 0 <= args.val_split < 1:
        parser.error("--batch-size, --epochs, --threads, --test-passes must be positive, "
                     "--limit non-negative, --val-split in [0, 1)")
