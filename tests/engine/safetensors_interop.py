#!/usr/bin/env python3
"""Checks polytask's safetensors files against the reference implementation (used by
tests/engine/test_safetensors.cpp and test_checkpoint.cpp; needs `pip install safetensors numpy`).

  safetensors_interop.py roundtrip IN OUT
      Loads IN with safetensors (numpy), prints a JSON summary on one line
      {"metadata": {...}, "tensors": {name: {"dtype": "float32", "shape": [...]}}}, and writes
      the same arrays and metadata to OUT, so the C++ test can compare values bit for bit.
  safetensors_interop.py write OUT
      Writes a reference file of known contents (see reference_arrays) for the C++ reader.

Exits non-zero, with the reason on stderr, on any failure.
"""
import json
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file


def reference_arrays():
    return {
        "f32": np.arange(6, dtype=np.float32).reshape(2, 3) * np.float32(0.5),
        "f64": np.arange(24, dtype=np.float64).reshape(2, 3, 4) - 7.25,
        "i32": np.array([-3, 0, 7, 2147483647, -2147483648], dtype=np.int32),
        "f16": np.ones((3,), dtype=np.float16),
        "i64": np.array([[1, 2]], dtype=np.int64),
        "scalar": np.array(3.5, dtype=np.float32),
        "empty": np.zeros((0, 4), dtype=np.float32),
        "layer.0/weight \"quoted\" \u00e9": np.full((1, 1, 1, 2), 9.0, dtype=np.float32),
    }


def roundtrip(src, dst):
    arrays = load_file(src)
    with safe_open(src, framework="numpy") as f:
        metadata = f.metadata() or {}
    summary = {
        "metadata": metadata,
        "tensors": {name: {"dtype": str(a.dtype), "shape": list(a.shape)} for name, a in arrays.items()},
    }
    print(json.dumps(summary, sort_keys=True))
    save_file(arrays, dst, metadata=metadata or None)


def main(argv):
    if len(argv) == 4 and argv[1] == "roundtrip":
        roundtrip(argv[2], argv[3])
    elif len(argv) == 3 and argv[1] == "write":
        save_file(reference_arrays(), argv[2], metadata={"written_by": "safetensors.numpy", "note": "a\nb"})
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except Exception as e:  # one line for the C++ test's failure message
        sys.stderr.write(f"safetensors_interop.py: {type(e).__name__}: {e}\n")
        sys.exit(1)
