#!/usr/bin/env python3
"""What TorchJD's aggregators make of random Jacobians, for the C++ balancers to match (used by
tests/engine/test_balancers_interop.cpp; needs `pip install torchjd` with its quadprog extra).

  balancer_interop.py AGGREGATOR TASKS DIM COUNT SEED
      AGGREGATOR is a Python expression over the names of torchjd.aggregation (and torch), e.g.
      'UPGrad()', 'AlignedMTL(scale_mode="min")', 'CAGrad(c=0.4)', 'NashMTL(n_tasks=3)'.
      Draws COUNT Jacobians J (TASKS x DIM, float64) after torch.manual_seed(SEED) and prints
      on one line  {"cases": [{"J": [[...], ...], "expected": [...]}, ...]}  where expected is
      AGGREGATOR(J), the DIM-vector the rows combine into. Every J is drawn before the first
      aggregation, so an aggregator that draws random numbers itself (PCGrad's task order) does
      not change the Jacobians.

The rows are Gaussian, each scaled by its own factor exp(N(0, 1)) so the gradient norms differ.
With TASKS >= 2 and COUNT >= 4 the last three cases are the hard ones a balancer meets when
gradients degenerate: rows 0 and 1 opposite (J_1 = -J_0), row 1 a duplicate of row 0, and the
last row zero. A case the reference itself fails on (it raises, or returns a non-finite vector)
is left out with a note on stderr, so one aggregator's limits do not hide the others' cases.

Exits 2 with a message on stderr for a bad argument, non-zero on any other failure.
"""
import json
import math
import sys


def usage(message):
    sys.stderr.write(f"balancer_interop.py: {message}\n"
                     "usage: balancer_interop.py AGGREGATOR TASKS DIM COUNT SEED\n")
    sys.exit(2)


def whole(text, name, low):
    try:
        value = int(text)
    except ValueError:
        usage(f"{name} must be a whole number, got '{text}'")
    if value < low:
        usage(f"{name} must be at least {low}, got {value}")
    return value


def jacobians(torch, tasks, dim, count, seed):
    torch.manual_seed(seed)
    out = []
    for k in range(count):
        scale = torch.exp(torch.randn(tasks, 1, dtype=torch.float64))
        J = torch.randn(tasks, dim, dtype=torch.float64) * scale
        hard = k - (count - 3) if tasks >= 2 and count >= 4 else -1
        if hard == 0:
            J[1] = -J[0]
        elif hard == 1:
            J[1] = J[0]
        elif hard == 2:
            J[tasks - 1] = 0.0
        out.append(J)
    return out


def main(argv):
    if len(argv) != 6:
        usage(f"expected 5 arguments, got {len(argv) - 1}")
    expression = argv[1]
    tasks = whole(argv[2], "TASKS", 1)
    dim = whole(argv[3], "DIM", 1)
    count = whole(argv[4], "COUNT", 1)
    seed = whole(argv[5], "SEED", 0)

    import torch
    import torchjd.aggregation as aggregation

    names = {k: v for k, v in vars(aggregation).items() if not k.startswith("_")}
    names["torch"] = torch

    def make():
        try:
            aggregator = eval(expression, {"__builtins__": {}}, names)
        except Exception as e:  # a typo or a bad option: the argument is wrong
            usage(f"AGGREGATOR '{expression}' does not evaluate: {type(e).__name__}: {e}")
        if not isinstance(aggregator, aggregation.Aggregator):
            usage(f"AGGREGATOR '{expression}' is not a torchjd aggregator")
        return aggregator

    make()
    cases = []
    for k, J in enumerate(jacobians(torch, tasks, dim, count, seed)):
        aggregator = make()  # a fresh one per case: no state (NashMTL's warm start) carries over
        try:
            expected = aggregator(J.clone())
        except Exception as e:
            sys.stderr.write(f"case {k} left out: {expression} raised {type(e).__name__}: {e}\n")
            continue
        values = expected.detach().to(torch.float64).reshape(-1).tolist()
        if len(values) != dim or not all(math.isfinite(v) for v in values):
            sys.stderr.write(f"case {k} left out: {expression} returned {values}\n")
            continue
        cases.append({"J": J.tolist(), "expected": values})
    print(json.dumps({"cases": cases}))


if __name__ == "__main__":
    main(sys.argv)
