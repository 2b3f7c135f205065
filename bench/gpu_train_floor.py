#!/usr/bin/env python3
"""The floor of a training epoch on a GPU, run by hand on the GPU machine: how much arithmetic
and how many bytes one epoch needs at least, and the GPU's measured rates to divide them by
(bench/README.md, "End-to-end GPU training benchmark"; /work/.library/device/METHOD.md).

  gpu_train_floor.py model --preset mnist-digit-parity --batch 128 --images 60000
      FLOPs and minimum bytes per epoch computed from models/configs/<preset>.toml (needs only
      Python 3.11+ for tomllib). JSON on stdout.
  gpu_train_floor.py measure
      FP32 (non-tensor: TF32 off), TF32 and BF16 matrix-product rates and the device-to-device
      copy bandwidth, measured with PyTorch on the GPU (CUDA events, median of repeats, random
      data). JSON on stdout.

The model:
  FLOPs = GEMM-like work only (multiply-adds x 2): conv2d 2*Cout*Hout*Wout*Cin*K*K per image
  and pass, dense 2*in*out. Training = forward + backward-filter + backward-data (= 3x forward),
  except that a layer reading a model input runs no backward-data (the input needs no gradient).
  Pooling, activations, losses and Adam add well under 1 %.
  Bytes (float32) = every activation (each layer's output; flatten is a view and moves nothing)
  written once and read once in the forward pass, its gradient written once and read once in
  the backward pass; the input batch read twice (forward, conv1's weight gradient); per step the
  parameters read in the forward pass, their gradients written, and Adam reading p, g, m, v and
  writing p, m, v (9 accesses per parameter). This is the traffic of an unfused implementation
  that never re-reads; a batch's activations can fit in the L2 cache (50 MB on an H100), so the
  memory term is a guide, the compute term the hard floor.
"""
import argparse
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = os.path.join(HERE, "..", "models", "configs")


def conv_out(size, kernel, stride, padding):
    if padding == "same":
        return (size + stride - 1) // stride
    return (size - kernel) // stride + 1


def model_floor(preset, batch, images, input_shapes):
    try:
        import tomllib
    except ImportError:
        raise SystemExit(f"gpu_train_floor.py: needs Python 3.11+ (tomllib); this is {sys.version.split()[0]}")
    path = os.path.join(CONFIGS, preset + ".toml")
    if not os.path.exists(path):
        raise SystemExit(f"gpu_train_floor.py: no preset {preset} ({path})")
    with open(path, "rb") as f:
        config = tomllib.load(f)

    shapes = {}  # value name -> per-image shape (tuple)
    model_inputs = set()
    for inp in config.get("inputs", []):
        name = inp["name"]
        shape = tuple(inp.get("shape", ())) or tuple(input_shapes.get(name, ()))
        if not shape:
            raise SystemExit(f"gpu_train_floor.py: give the shape of input '{name}' (--input {name}=C,H,W)")
        shapes[name] = shape
        model_inputs.add(name)

    layers, params, flops_fwd, flops_train, act_elems = [], 0, 0, 0, 0
    counted_params = set()
    for layer in config.get("layers", []):
        name, kind = layer["name"], layer["type"]
        srcs = layer.get("inputs") or [layer["input"]]
        for s in srcs:
            if s not in shapes:
                raise SystemExit(f"gpu_train_floor.py: layer {name}: unknown input {s}")
        x = shapes[srcs[0]]
        reads_model_input = any(s in model_inputs for s in srcs)
        owner = layer.get("shares", name)
        p = f = 0
        moves = True  # writes an activation
        if kind == "conv2d":
            c, h, w = x
            k, stride = layer["kernel"], layer.get("stride", 1)
            pad = layer.get("padding", "valid")
            out = (layer["filters"], conv_out(h, k, stride, pad), conv_out(w, k, stride, pad))
            p = layer["filters"] * c * k * k + (layer["filters"] if layer.get("use_bias", True) else 0)
            f = 2 * out[0] * out[1] * out[2] * c * k * k
        elif kind == "dense":
            n_in = math.prod(x)
            out = (layer["units"],)
            p = n_in * layer["units"] + (layer["units"] if layer.get("use_bias", True) else 0)
            f = 2 * n_in * layer["units"]
        elif kind == "max_pool2d":
            c, h, w = x
            pool = layer.get("pool", 2)
            stride = layer.get("stride", 0) or pool
            out = (c, (h - pool) // stride + 1, (w - pool) // stride + 1)
        elif kind == "flatten":
            out, moves = (math.prod(x),), False
        elif kind in ("relu", "dropout"):
            out = x
        elif kind == "batch_norm":
            out = x
            p = 2 * x[0]
        elif kind == "add":
            out = x
        elif kind == "concat":
            out = (sum(shapes[s][0] for s in srcs),) + tuple(x[1:])
        else:
            raise SystemExit(f"gpu_train_floor.py: layer {name}: type {kind} not modelled")
        shapes[name] = out
        if owner in counted_params:
            p = 0
        else:
            counted_params.add(owner)
        params += p
        flops_fwd += f
        flops_train += f * (2 if reads_model_input else 3)
        if moves:
            act_elems += math.prod(out)
        layers.append({"name": name, "type": kind, "out": list(out), "params": p,
                       "fwd_flops_per_image": f})

    input_elems = sum(math.prod(shapes[n]) for n in model_inputs)
    steps = math.ceil(images / batch)
    bytes_act = 4 * images * (4 * act_elems + 2 * input_elems)
    bytes_params = 4 * 9 * params * steps
    flops = flops_train * images
    return {
        "preset": preset, "batch": batch, "images": images, "steps": steps,
        "parameters": params, "activation_elements_per_image": act_elems,
        "forward_flops_per_image": flops_fwd, "train_flops_per_image": flops_train,
        "flops_per_epoch": flops, "bytes_per_epoch": bytes_act + bytes_params,
        "bytes_activations_per_epoch": bytes_act, "bytes_parameters_per_epoch": bytes_params,
        "activation_bytes_per_step": 4 * batch * (act_elems + input_elems),
        "layers": layers,
    }


def measure():
    import torch
    if not torch.cuda.is_available():
        raise SystemExit("gpu_train_floor.py measure: no CUDA device visible to torch")
    dev = torch.device("cuda")

    def median_ms(fn, repeats=10, warmup=3):
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
        times.sort()
        return times[len(times) // 2]

    def set_tf32(enabled):
        # PyTorch 2.9+: the fp32_precision setting (mixing it with allow_tf32 raises there).
        if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
            torch.backends.cuda.matmul.fp32_precision = "tf32" if enabled else "ieee"
            return "torch.backends.cuda.matmul.fp32_precision"
        torch.backends.cuda.matmul.allow_tf32 = enabled
        return "torch.backends.cuda.matmul.allow_tf32"

    out = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__}
    n = 8192
    api = ""
    for label, dtype, tf32, size in (("fp32", torch.float32, False, n),
                                     ("tf32", torch.float32, True, n),
                                     ("bf16", torch.bfloat16, False, n)):
        api = set_tf32(tf32)
        a = torch.randn(size, size, device=dev).to(dtype)
        b = torch.randn(size, size, device=dev).to(dtype)
        c = torch.empty(size, size, device=dev, dtype=dtype)
        ms = median_ms(lambda: torch.matmul(a, b, out=c), repeats=5 if label == "fp32" else 10)
        out[f"{label}_tflops"] = 2 * size ** 3 / (ms * 1e-3) / 1e12
        del a, b, c
    elems = 256 * 1024 * 1024  # 1 GiB of float32
    src = torch.randn(elems, device=dev)
    dst = torch.empty_like(src)
    ms = median_ms(lambda: dst.copy_(src))
    out["copy_tbps"] = 2 * 4 * elems / (ms * 1e-3) / 1e12  # bytes read + bytes written
    out["method"] = (f"8192^3 torch.matmul, median of 5-10 after 3 warm-ups, random data; fp32 with "
                     f"TF32 off ({api}); copy: 1 GiB float32 device-to-device, read + write bytes")
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("model", help="FLOPs and minimum bytes of one epoch of a preset")
    m.add_argument("--preset", default="mnist-digit-parity")
    m.add_argument("--batch", type=int, default=128)
    m.add_argument("--images", type=int, default=60000)
    m.add_argument("--input", action="append", default=[], metavar="NAME=C,H,W",
                   help="per-image shape of a model input (default image=1,28,28)")
    sub.add_parser("measure", help="FP32/TF32/BF16 matmul rates and copy bandwidth (PyTorch, CUDA)")
    args = p.parse_args()
    if args.command == "model":
        shapes = {"image": (1, 28, 28)}
        for spec in args.input:
            name, _, dims = spec.partition("=")
            shapes[name] = tuple(int(d) for d in dims.split(","))
        print(json.dumps(model_floor(args.preset, args.batch, args.images, shapes)))
    else:
        print(json.dumps(measure()))


if __name__ == "__main__":
    main()
