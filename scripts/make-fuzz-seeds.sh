#!/usr/bin/env bash
# Regenerates the fuzz targets' seed corpora in tests/fuzz/corpus/<target>/: a few valid and
# near-valid inputs per parser (a few KB each target), committed so that CI's fuzz smoke starts
# from real formats. The safetensors seeds come from the fuzz binaries themselves (they write a
# checkpoint of their fixed network), so pass the fuzz build directory.
set -euo pipefail

usage() {
  cat <<'TEXT'
usage: scripts/make-fuzz-seeds.sh [FUZZ_BUILD_DIR]
  FUZZ_BUILD_DIR  a build with -DPOLYTASK_BUILD_FUZZERS=ON (default: build-fuzz), for the
                  safetensors seeds; writes tests/fuzz/corpus/
TEXT
}
[[ ${1:-} == -h || ${1:-} == --help ]] && { usage; exit 0; }
cd "$(dirname "$0")/.."
build=${1:-build-fuzz}
out=tests/fuzz/corpus
for t in fuzz_safetensors_model fuzz_safetensors_state; do
  [[ -x $build/tests/fuzz/$t ]] || { echo "make-fuzz-seeds: $build/tests/fuzz/$t is not built" >&2; exit 1; }
done
rm -rf "$out"
mkdir -p "$out"/{idx,cifar10,toml_config,run_conf,metrics_jsonl,run_history,events_file,safetensors_model,safetensors_state}

# IDX and CIFAR-10: tiny files in the real layouts, raw and gzip, and broken variants.
python3 - "$out" <<'PY'
import gzip, struct, sys
out = sys.argv[1]
def put(path, data): open(f"{out}/{path}", "wb").write(data)
images = struct.pack(">IIII", 0x803, 3, 4, 4) + bytes(range(48))
labels = struct.pack(">II", 0x801, 5) + bytes([0, 1, 2, 9, 255])
put("idx/images", images)
put("idx/labels", labels)
put("idx/images.gz", gzip.compress(images, mtime=0))
put("idx/labels.gz", gzip.compress(labels, mtime=0))
put("idx/images-truncated", images[:-5])
put("idx/images-trailing", images + b"\0\0")
put("idx/labels-as-images", struct.pack(">IIII", 0x801, 3, 4, 4) + bytes(48))
put("idx/gzip-truncated", gzip.compress(images, mtime=0)[:-9])
put("idx/huge-dims", struct.pack(">IIII", 0x803, 0xFFFFFFFF, 0xFFFF, 0xFFFF))
record = lambda label: bytes([label]) + bytes((i * 7) % 256 for i in range(3072))
put("cifar10/one-record", record(3))
put("cifar10/two-records.gz", gzip.compress(record(0) + record(9), mtime=0))
put("cifar10/bad-label", record(10))
put("cifar10/short", record(1)[:-1])
put("cifar10/cifar100-like", record(1) + b"\0")
PY

# TOML configs: two presets as written, and broken variants of the smallest.
cp models/configs/two-input-cls-reg.toml "$out/toml_config/two-input-cls-reg.toml"
cp models/configs/mnist-digit-parity.toml "$out/toml_config/mnist-digit-parity.toml"
sed 's/units = [0-9]*/units = -1/' models/configs/two-input-cls-reg.toml >"$out/toml_config/negative-units.toml"
head -c 600 models/configs/two-input-cls-reg.toml >"$out/toml_config/cut-short.toml"

# run.conf as train writes it, and damaged copies.
conf='# polytask run settings (read by eval, predict and train --resume)
batch-size = 64
data = synthetic:digits
limit = 0
lr = 0.001
momentum = 0.9
optimizer = adam
precision = fp32
seed = 0
val-split = 0.1
'
printf '%s' "$conf" >"$out/run_conf/valid"
printf '%s' "${conf/seed = 0/seed = zero}" >"$out/run_conf/bad-seed"
printf '%s' "${conf/batch-size = 64/batch-size = 99999999999999999999}" >"$out/run_conf/huge-batch"
printf '%s' "${conf/precision = fp32/precision = fp7}" >"$out/run_conf/bad-precision"
printf 'batch-size=64\n' >"$out/run_conf/no-spaces"

# metrics.jsonl: the first byte chooses the resumed epoch (fuzz_metrics_jsonl.cpp).
line() { printf '{"epoch": %s, "loss": 0.5, "digit_loss": 0.25, "val_digit_accuracy": 0.9, "weights": {"digit": 1}}\n' "$1"; }
{ printf '\x02'; line 1; line 2; line 3; } >"$out/metrics_jsonl/three-epochs"
{ printf '\x01'; line 1; printf '{"epoch": -4}\n'; } >"$out/metrics_jsonl/negative-epoch"
{ printf '\x05'; line 1; printf 'not json\n'; } >"$out/metrics_jsonl/garbage-line"
{ printf '\x03'; line 99999999999999999999; } >"$out/metrics_jsonl/overflow-epoch"

# metrics.jsonl as the curves read it (fuzz_run_history.cpp): two heads, moving weights, nulls.
history() { printf '{"epoch": %s, "loss": 0.%s, "digit_loss": 0.3, "size_loss": 0.1, "digit_accuracy": 0.8, "size_mae": null, "val_loss": 0.7, "val_digit_accuracy": 0.75, "learning_rate": 0.001, "balancer": "dwa", "weights": {"digit": 1.%s, "size": 0.5}}\n' "$1" "$1" "$1"; }
{ history 1; history 2; history 3; } >"$out/run_history/three-epochs"
{ history 1; printf '{"epoch": 2, "weights": [1, 2]}\n'; } >"$out/run_history/weights-not-an-object"
printf '{"epoch": 1, "loss": 1e308, "x_loss": -1e308}\n\n{"epoch": 1}\n' >"$out/run_history/extremes"

# TensorBoard events files (fuzz_events_file.cpp), framed by TensorBoard's own Python writer
# when it is installed: a scalar, a text and a histogram at steps 0-2, and a truncated copy.
python3 - "$out/events_file" <<'PY' || echo "make-fuzz-seeds: no tensorboard in Python; events_file seeds skipped" >&2
import sys
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.record_writer import RecordWriter
out = sys.argv[1]
class Sink:
    def __init__(self): self.data = b""
    def write(self, b): self.data += b
    def flush(self): pass
sink = Sink()
w = RecordWriter(sink)
w.write(event_pb2.Event(wall_time=1.0, file_version="brain.Event:2").SerializeToString())
for step in range(3):
    v = summary_pb2.Summary.Value(tag="epoch_loss", simple_value=1.0 / (step + 1))
    w.write(event_pb2.Event(wall_time=2.0, step=step, summary=summary_pb2.Summary(value=[v])).SerializeToString())
h = summary_pb2.HistogramProto(min=-1, max=1, num=3, sum=0, sum_squares=2, bucket_limit=[0, 1], bucket=[1, 2])
w.write(event_pb2.Event(step=1, summary=summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="w", histo=h)])).SerializeToString())
open(f"{out}/three-steps", "wb").write(sink.data)
open(f"{out}/truncated", "wb").write(sink.data[:-7])
PY

# Safetensors: the fixed network's own checkpoint files, written by the targets.
POLYTASK_FUZZ_WRITE_SEEDS="$out/safetensors_model" "$build/tests/fuzz/fuzz_safetensors_model"
POLYTASK_FUZZ_WRITE_SEEDS="$out/safetensors_state" "$build/tests/fuzz/fuzz_safetensors_state"
du -sh "$out"/*
