#!/usr/bin/env python3
"""Reads what bench/run_cpu_comparison.sh left in its folder and prints the comparison's tables;
writes them, with the machine's header and every run, as Markdown.

  cpu_comparison_table.py --report DIR --markdown FILE --epochs E --command "..."
  cpu_comparison_table.py --progress CONTENDER DIR ROUND   # one run's figures, for progress lines

The folder: machine.tsv ("key<TAB>value" lines), configs.txt ("<preset> <batch>" lines, in the
order they ran) and <preset>/<batch>/ holding, per round r,
polytask-r<r>/ (the run directory: metrics.jsonl, test_metrics.json with the test pass's
"seconds"), polytask-r<r>.log (train's output), and keras-r<r>.jsonl, pytorch-r<r>.jsonl (the
peers' JSON lines).

A run's epoch figure is its last epoch (the first carries warm-up); its test figure is the test
pass timed inside the process (the last of two for the peers). The tables show the median over
rounds.
Standard library only.
"""
import argparse
import json
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers"))
from peer_workload import PRESETS  # noqa: E402

CONTENDERS = ("polytask", "keras", "pytorch")
LABEL = {"polytask": "polytask", "keras": "Keras", "pytorch": "PyTorch"}
# The target: polytask's epoch in at most 0.75x each peer's time at batch 128, and no
# worse than 1x at the other batch sizes (32, 256).
TARGET_AT_128, TARGET_OTHER = 0.75, 1.0
TARGET_TEXT = f"<= {TARGET_AT_128}x each peer at batch 128, <= {TARGET_OTHER}x at other batches"


def target_for(batch):
    return TARGET_AT_128 if int(batch) == 128 else TARGET_OTHER


def read_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip().startswith("{")]


def load_run(directory, who, round_):
    """{epochs: [records], test_s, info, test} of one run."""
    if who == "polytask":
        base = os.path.join(directory, f"polytask-r{round_}")
        with open(base + ".log") as f:
            first = f.readline()
        rows = re.search(r": (\d+) train, (\d+) test", first)
        params = re.search(r"\((\d+) parameters\)", first)
        test_file = os.path.join(base, "test_metrics.json")
        test = read_lines(test_file)[0] if os.path.exists(test_file) else {}
        return {"epochs": read_lines(os.path.join(base, "metrics.jsonl")),
                "test_s": test.get("seconds"),
                "test": test,
                "info": {"parameters": int(params[1]) if params else None,
                         "rows": f"{rows[1]} train + {rows[2]} test" if rows else "?"}}
    records = read_lines(os.path.join(directory, f"{who}-r{round_}.jsonl"))
    tests = [r for r in records if r.get("phase") == "test"]
    return {"epochs": [r for r in records if r.get("phase") == "epoch"],
            "test_s": tests[-1]["seconds"] if tests else None,
            "test": tests[-1] if tests else {},
            "info": next((r for r in records if r.get("phase") == "info"), {})}


def rounds_of(directory):
    found = set()
    for name in os.listdir(directory):
        m = re.match(r"(polytask|keras|pytorch)-r(\d+)", name)
        if m:
            found.add(int(m[2]))
    return sorted(found)


def fmt(value, digits=2):
    return "–" if value is None else f"{value:.{digits}f}"


def ratio(ours, theirs):
    return None if ours is None or not theirs else ours / theirs


def table(header, rows):
    """Aligned plain text and a Markdown table of the same rows."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    text = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header] + rows]
    text.insert(1, "  ".join("-" * w for w in widths))
    md = ["| " + " | ".join(str(c) for c in header) + " |",
          "|" + "|".join("---" for _ in header) + "|"]
    md += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(text), "\n".join(md)


def head_summary(preset, record, prefix):
    """'digit 0.871, parity 0.934' from a record's <prefix><task>_<metric> values."""
    parts = []
    for t in PRESETS[preset].tasks:
        value = record.get(f"{prefix}{t.name}_{t.metric}")
        parts.append(f"{t.name} {t.metric} {fmt(value, 3)}")
    return ", ".join(parts)


def progress(who, directory, round_):
    run = load_run(directory, who, int(round_))
    epochs = " ".join(fmt(e["seconds"]) for e in run["epochs"])
    test = fmt(run["test_s"])
    print(f"epochs {epochs} s | test {test} s")


def report(out, markdown_path, epochs, command):
    machine = {}
    with open(os.path.join(out, "machine.tsv")) as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("\t")
            machine[key] = value
    configs = []  # (preset, batch, {who: [runs]}) in the order they ran
    with open(os.path.join(out, "configs.txt")) as f:
        for preset, batch in (line.split() for line in f if line.strip()):
            directory = os.path.join(out, preset, batch)
            runs = {who: [load_run(directory, who, r) for r in rounds_of(directory)]
                    for who in CONTENDERS}
            configs.append((preset, int(batch), runs))
    if not configs:
        sys.exit("cpu_comparison_table.py: error: no runs in " + out)

    def median_epoch(runs):
        return statistics.median(r["epochs"][-1]["seconds"] for r in runs) if runs else None

    def median_test(runs):
        values = [r["test_s"] for r in runs if r["test_s"] is not None]
        return statistics.median(values) if values else None

    epoch_rows, test_rows, verdicts = [], [], []
    for preset, batch, runs in configs:
        e = {who: median_epoch(runs[who]) for who in CONTENDERS}
        t = {who: median_test(runs[who]) for who in CONTENDERS}
        rk, rp = ratio(e["polytask"], e["keras"]), ratio(e["polytask"], e["pytorch"])
        target = target_for(batch)
        met = rk is not None and rp is not None and rk <= target and rp <= target
        epoch_rows.append([preset, batch, fmt(e["polytask"]), fmt(e["keras"]), fmt(e["pytorch"]),
                           fmt(rk), fmt(rp), f"<= {target}x both: {'met' if met else 'NOT met'}"])
        test_rows.append([preset, batch, fmt(t["polytask"]), fmt(t["keras"]),
                          fmt(t["pytorch"]), fmt(ratio(t["polytask"], t["keras"])),
                          fmt(ratio(t["polytask"], t["pytorch"]))])
        verdicts.append(met)

    first_keras = next((r for _, _, runs in configs for r in runs["keras"]), None)
    first_torch = next((r for _, _, runs in configs for r in runs["pytorch"]), None)
    first_ours = next((r for _, _, runs in configs for r in runs["polytask"]), None)
    k_info = first_keras["info"] if first_keras else {}
    p_info = first_torch["info"] if first_torch else {}
    rows_note = (f"{k_info.get('train_rows', '?')} trained + {k_info.get('validation_rows', '?')} "
                 f"validated per epoch, {k_info.get('test_rows', '?')} test images")
    rounds = max(len(runs["polytask"]) for _, _, runs in configs)

    epoch_text, epoch_md = table(
        ["preset", "batch", "polytask s", "Keras s", "PyTorch s", "polytask/Keras",
         "polytask/PyTorch", "target"], epoch_rows)
    test_text, test_md = table(
        ["preset", "batch", "polytask s", "Keras s", "PyTorch s", "polytask/Keras",
         "polytask/PyTorch"], test_rows)

    print(f"\nSeconds per epoch ({rows_note}; validation pass included), last of {epochs} "
          f"epochs, median of {rounds} round(s):\n{epoch_text}")
    print(f"\nTest pass seconds, median of {rounds} round(s):\n{test_text}")
    print(f"\ntarget: polytask's epoch {TARGET_TEXT} -> met in {sum(verdicts)} of "
          f"{len(verdicts)} preset/batch pairs")

    details = []
    for preset, batch, runs in configs:
        for who in CONTENDERS:
            for i, run in enumerate(runs[who], 1):
                last = run["epochs"][-1] if run["epochs"] else {}
                test_prefix = "" if who == "polytask" else "test_"
                details.append([preset, batch, i, LABEL[who],
                                " ".join(fmt(e["seconds"]) for e in run["epochs"]),
                                fmt(run["test_s"]), head_summary(preset, last, "val_"),
                                head_summary(preset, run["test"], test_prefix)])
    details_md = table(["preset", "batch", "round", "contender", "epoch seconds", "test s",
                        "last epoch's validation", "test"], details)[1]

    lines = [f"# CPU peers: `polytask train` against Keras 3 (TensorFlow-CPU) and PyTorch, "
             f"{machine.get('date', '?')[:10]}", "",
             "Written by `bench/run_cpu_comparison.sh` (bench/README.md). Command:", "",
             f"    {command.strip()}", ""]
    for key in ("date", "commit", "cpu", "flags", "cpus", "blas", "blas note", "polytask cpu kernels",
                "polytask threads", "settings", "load before", "load after"):
        if key in machine:
            lines.append(f"- **{key}**: {machine[key]}")
    if k_info:
        lines.append(f"- **Keras peer**: TensorFlow {k_info.get('tensorflow')}, Keras "
                     f"{k_info.get('keras')} ({k_info.get('backend')} backend), oneDNN "
                     f"{'on' if k_info.get('onednn') else 'off'}, XLA (jit_compile) "
                     f"{'on' if k_info.get('jit_compile') else 'off'}, intra/inter-op threads "
                     f"{k_info.get('intra_op_threads')}/{k_info.get('inter_op_threads')}")
    if p_info:
        lines.append(f"- **PyTorch peer**: torch {p_info.get('torch')} (Python "
                     f"{p_info.get('python')}), CPU capability {p_info.get('cpu_capability')}, "
                     f"BLAS {p_info.get('blas')}, oneDNN (mkldnn) "
                     f"{'available' if p_info.get('mkldnn') else 'absent'}, threads "
                     f"{p_info.get('threads')}, inter-op {p_info.get('interop_threads')}")
    if first_ours:
        lines.append(f"- **polytask**: {first_ours['info']['rows']} images loaded, "
                     f"{first_ours['info']['parameters']} parameters (the peers: "
                     f"Keras {k_info.get('parameters')} incl. BatchNorm's moving statistics, "
                     f"PyTorch {p_info.get('parameters')})")
    lines += ["", f"## Seconds per epoch", "",
              f"{rows_note}; each epoch's time includes its validation pass. A run's figure is "
              f"its last of {epochs} epochs (the first carries warm-up); median of {rounds} "
              f"round(s). Target: polytask {TARGET_TEXT}.", "", epoch_md, "",
              "## Test pass", "",
              "The test set at the run's batch size. Keras: `model.evaluate`, PyTorch: a "
              "`torch.no_grad()` loop, each the second of two passes, timed in-process. "
              "polytask: the test pass at the end of `polytask train`, timed in-process "
              "(`seconds` in the run's test_metrics.json).",
              "", test_md, "", "## Every run", "", details_md, ""]
    with open(markdown_path, "w") as f:
        f.write("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--progress", nargs=3, metavar=("CONTENDER", "DIR", "ROUND"))
    parser.add_argument("--report", metavar="DIR")
    parser.add_argument("--markdown", metavar="FILE")
    parser.add_argument("--epochs", type=int, default=0)
    parser.add_argument("--command", default="bench/run_cpu_comparison.sh")
    args = parser.parse_args()
    if args.progress:
        progress(*args.progress)
    elif args.report and args.markdown:
        report(args.report, args.markdown, args.epochs, args.command)
    else:
        parser.error("give --progress CONTENDER DIR ROUND, or --report DIR --markdown FILE")


if __name__ == "__main__":
    main()
