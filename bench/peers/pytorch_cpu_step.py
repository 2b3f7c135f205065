#!/usr/bin/python3
"""PyTorch CPU peer of bench/bench_train_step.cpp: the mnist-digit-parity model, one training
step = gather a batch -> forward -> both cross-entropy losses (weights 1.0 / 0.5) -> backward ->
Adam (lr 1e-3, eps 1e-7 as Keras and polytask), float32, random 28x28x1 inputs.

Run it with Debian's interpreter (/usr/bin/python3: python3-torch), and pick the BLAS with
LD_LIBRARY_PATH, e.g.
  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-pthread /usr/bin/python3 pytorch_cpu_step.py
  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/blas             /usr/bin/python3 pytorch_cpu_step.py
(Debian's libtorch links libblas.so.3, whichever implementation that resolves to.)

Prints human-readable lines and one machine-readable line:
  RESULT label=... images_per_s=... s_per_epoch=... [epoch_s=...]
"""
import argparse
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    sys.exit("pytorch_cpu_step.py: torch is not importable by " + sys.executable +
             " (install python3-torch and run with /usr/bin/python3)")

EPOCH_IMAGES = 54000  # 60,000 MNIST images less a 10 % validation split


class DigitParity(nn.Module):
    """Conv32-3x3-ReLU -> MaxPool2 -> Conv64-3x3-ReLU -> MaxPool2 -> Flatten -> Dense128-ReLU
    -> heads Dense10 (digit) and Dense2 (parity)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.shared = nn.Linear(64 * 5 * 5, 128)
        self.digit = nn.Linear(128, 10)
        self.parity = nn.Linear(128, 2)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        z = F.relu(self.shared(torch.flatten(h, 1)))
        return self.digit(z), self.parity(z)


def blas_libraries():
    """The BLAS/LAPACK shared objects mapped into this process (what LD_LIBRARY_PATH chose)."""
    libs = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if ("blas" in path or "lapack" in path) and path not in libs:
                libs.append(path)
    return libs


def sgemm_gflops(size=512, repeats=10):
    """A quick square matmul: shows which BLAS torch.mm really calls (reference BLAS is ~10x
    slower than OpenBLAS)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(2):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2.0 * size ** 3 * repeats / (time.perf_counter() - start) / 1e9


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    p.add_argument("--steps", type=int, default=60, help="timed steps")
    p.add_argument("--repeats", type=int, default=3,
                   help="timed blocks of --steps; the median block is reported")
    p.add_argument("--epoch", action="store_true",
                   help="also time one full epoch of 54,000 images (ceil(54000/batch) steps)")
    p.add_argument("--no-mkldnn", action="store_true",
                   help="disable oneDNN so convolutions go through im2col + BLAS too")
    p.add_argument("--label", default="pytorch")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    if args.no_mkldnn:
        torch.backends.mkldnn.enabled = False
    torch.manual_seed(0)

    model = DigitParity()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
    rows = 8192  # random data the batches are gathered from, as the C++ benchmark does
    images = torch.rand(rows, 1, 28, 28)
    digits = torch.randint(0, 10, (rows,))
    parity = digits % 2
    order = torch.randperm(rows)
    cursor = [0]

    def step(n):
        if cursor[0] + n > rows:
            cursor[0] = 0
        idx = order[cursor[0]:cursor[0] + n]
        cursor[0] += n
        x, yd, yp = images.index_select(0, idx), digits.index_select(0, idx), parity.index_select(0, idx)
        opt.zero_grad(set_to_none=True)
        out_d, out_p = model(x)
        loss = 1.0 * F.cross_entropy(out_d, yd) + 0.5 * F.cross_entropy(out_p, yp)
        loss.backward()
        opt.step()
        return loss

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"oneDNN {'on' if torch.backends.mkldnn.enabled and torch.backends.mkldnn.is_available() else 'off'}, "
          f"batch {args.batch}")
    print("BLAS mapped: " + ", ".join(blas_libraries()))
    print(f"sgemm 512^3: {sgemm_gflops():.1f} GFLOP/s")

    for _ in range(args.warmup):
        step(args.batch)
    blocks = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in range(args.steps):
            loss = step(args.batch)
        loss.item()
        blocks.append(time.perf_counter() - start)
    blocks.sort()
    per_step = blocks[len(blocks) // 2] / args.steps
    ips = args.batch / per_step
    print(f"step: {per_step * 1e3:.1f} ms (blocks of {args.steps}: " +
          ", ".join(f"{b / args.steps * 1e3:.1f}" for b in blocks) + " ms/step)")
    print(f"images/s: {ips:.0f}   s per {EPOCH_IMAGES}-image epoch: {EPOCH_IMAGES / ips:.1f}")
    result = f"RESULT label={args.label} images_per_s={ips:.1f} s_per_epoch={EPOCH_IMAGES / ips:.2f}"

    if args.epoch:
        steps = (EPOCH_IMAGES + args.batch - 1) // args.batch
        start = time.perf_counter()
        for s in range(steps):
            loss = step(min(args.batch, EPOCH_IMAGES - s * args.batch))
        loss.item()
        epoch = time.perf_counter() - start
        print(f"full epoch ({steps} steps): {epoch:.1f} s")
        result += f" epoch_s={epoch:.2f}"
    print(result)


if __name__ == "__main__":
    main()
