#!/usr/bin/env python3
"""Keras 3 on TensorFlow-CPU, trained the way the Keras multi-output tutorial does it: a
functional keras.Model with one named output per task, model.compile with per-output losses,
loss_weights and metrics, model.fit(validation_split=..., shuffle=True) on numpy arrays and
model.evaluate on the test set. The CPU peer of `polytask train` in bench/run_cpu_comparison.sh.

  .peers-venv/bin/python bench/peers/keras_tutorial.py --preset fashion-type-brightness \
      --batch-size 128 --epochs 2 --threads 2 [--limit 2000]

The models are the presets' (peer_workload.py, checked against models/configs/*.toml): heads
end in a softmax (classification, sparse categorical cross-entropy) or linear (regression, MSE),
as the tutorial writes them; polytask's heads are linear with the softmax inside the loss, the
same function. Keras defaults throughout: Glorot-uniform kernels, zero biases, BatchNormalization
momentum 0.99 / epsilon 1e-3, Adam(learning_rate=1e-3) with epsilon 1e-7, channels_last, and
compile's jit_compile="auto", which Keras 3 resolves to no XLA on a machine with no GPU (the
resolved value is printed; --jit-compile on forces XLA).

Output, one JSON object per line: an "info" record (versions, oneDNN, XLA, threads), one
"epoch" record per epoch, timed from on_epoch_begin to on_epoch_end of a callback, so the
validation pass is inside; then --test-passes "test" records, each one model.evaluate over the
test set.
"""
import argparse
import os
import sys
import time

from peer_workload import (PRESETS, check_arguments, check_preset_toml, common_arguments, emit,
                           fail, load_split, validation_rows)

PROGRAM = "keras_tutorial.py"


def parse_args():
    parser = common_arguments(argparse.ArgumentParser(description=__doc__.split("\n\n")[0]))
    parser.add_argument("--jit-compile", choices=("auto", "on", "off"), default="auto",
                        help="model.compile's jit_compile (auto: Keras' default)")
    args = parser.parse_args()
    check_arguments(parser, args)
    return args


def limit_threads(threads):
    """Before TensorFlow is imported: its thread pools and oneDNN's OpenMP read these once."""
    for var in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ[var] = str(threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # its INFO/WARNING start-up lines


def build_model(keras, preset_name):
    layers = keras.layers
    preset = PRESETS[preset_name]
    image = keras.Input(shape=(28, 28, 1), name="image")
    x = image
    for i, filters in ((1, 32), (2, 64)):
        if preset.batch_norm:
            x = layers.Conv2D(filters, 3, name=f"conv{i}")(x)
            x = layers.BatchNormalization(name=f"bn{i}")(x)
            x = layers.ReLU(name=f"relu{i}")(x)
        else:
            x = layers.Conv2D(filters, 3, activation="relu", name=f"conv{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    shared = layers.Dense(128, activation="relu", name="shared")(x)
    outputs = {}
    for task in preset.tasks:
        h = shared
        if preset.head_hidden:
            h = layers.Dense(preset.head_hidden, activation="relu", name=f"{task.name}_hidden")(h)
            h = layers.Dropout(preset.dropout, name=f"{task.name}_dropout")(h)
        softmax = task.loss == "softmax_cross_entropy"
        outputs[task.name] = layers.Dense(task.units, activation="softmax" if softmax else None,
                                          name=task.name)(h)
    model = keras.Model(image, outputs, name=preset_name)
    tasks = preset.tasks
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss={t.name: ("sparse_categorical_crossentropy" if t.loss == "softmax_cross_entropy"
                       else "mse") for t in tasks},
        loss_weights={t.name: t.weight for t in tasks},
        metrics={t.name: [t.metric] for t in tasks},
    )
    return model


def main():
    args = parse_args()
    check_preset_toml(PROGRAM, args.preset)
    limit_threads(args.threads)
    try:
        import tensorflow as tf
        import keras
        from tensorflow.python.util import _pywrap_util_port
    except ImportError as e:
        fail(PROGRAM, f"{e} (with {sys.executable}): run bench/peers/setup_venv.sh")

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    keras.utils.set_random_seed(args.seed)

    x_train, y_train = load_split(PROGRAM, args.data, "train", args.preset, args.limit)
    x_test, y_test = load_split(PROGRAM, args.data, "test", args.preset, args.limit)
    val_rows = validation_rows(len(x_train), args.val_split)

    model = build_model(keras, args.preset)
    if args.jit_compile != "auto":  # set after compile so the default path stays the tutorial's
        model.jit_compile = args.jit_compile == "on"
    emit({"peer": "keras", "phase": "info", "preset": args.preset, "batch": args.batch_size,
          "tensorflow": tf.__version__, "keras": keras.__version__,
          "backend": keras.backend.backend(),
          # True unless TF_ENABLE_ONEDNN_OPTS=0 (TensorFlow's own test, the one behind its
          # "oneDNN custom operations are on" start-up line).
          "onednn": bool(_pywrap_util_port.IsMklEnabled()),
          "jit_compile": bool(model.jit_compile), "threads": args.threads,
          "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
          "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
          "parameters": model.count_params(), "train_rows": len(x_train) - val_rows,
          "validation_rows": val_rows, "test_rows": len(x_test)})

    class EpochTimer(keras.callbacks.Callback):
        """Keras calls on_epoch_end after the validation pass, so it is inside the time."""

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self.start
            emit({"peer": "keras", "phase": "epoch", "preset": args.preset,
                  "batch": args.batch_size, "epoch": epoch + 1, "seconds": seconds,
                  **{k: float(v) for k, v in (logs or {}).items()}})

    model.fit(x_train[..., None], y_train, batch_size=args.batch_size, epochs=args.epochs,
              validation_split=args.val_split, shuffle=True, verbose=0, callbacks=[EpochTimer()])
    for test_pass in range(1, args.test_passes + 1):
        start = time.perf_counter()
        results = model.evaluate(x_test[..., None], y_test, batch_size=args.batch_size,
                                 verbose=0, return_dict=True)
        seconds = time.perf_counter() - start
        emit({"peer": "keras", "phase": "test", "preset": args.preset, "batch": args.batch_size,
              "pass": test_pass, "seconds": seconds, "examples": len(x_test),
              **{"test_" + k: float(v) for k, v in results.items()}})


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        fail(PROGRAM, "interrupted")
