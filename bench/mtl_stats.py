#!/usr/bin/env python3
"""Statistics and Markdown for bench/mtl_report.sh (stdlib only).

  python3 bench/mtl_stats.py --self-test       # checks the statistics against known numbers
  python3 bench/mtl_stats.py report ...         # what mtl_report.sh runs (see its arguments)

Definitions (the report's header repeats them):
- mean ± 95 % confidence interval over seeds: Student t with n − 1 degrees of freedom,
  half-width t(0.975, n − 1) · s / √n (s: the sample standard deviation);
- Δ_t = ±(M_t − M_t,alone)/M_t,alone · 100 per seed against that seed's single-task baseline
  ("+" for higher-is-better metrics, "−" for lower-is-better ones), Δp = mean of Δ_t over the
  tasks (LibMTL's Δp); mean ± CI over seeds;
- verdict vs static: the per-seed difference Δp(strategy) − Δp(static) (paired: same seed, same
  baselines), mean ± CI: "better" when the interval lies above 0, "worse" when below, else
  "not distinguishable at these seeds";
- seconds per training step: an epoch's seconds / its steps (ceil(training rows / batch)), the
  mean over the epochs of a run; the ratio to static is the mean over seeds of the per-seed
  ratios.
"""
import argparse
import json
import math
import os
import re
import statistics
import sys

# Two-sided 95 % quantiles of Student's t by degrees of freedom; between two entries the smaller
# degrees of freedom are used (a slightly wider, conservative interval).
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
        9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120,
        17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064,
        25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045, 30: 2.042, 40: 2.021, 60: 2.000,
        120: 1.980}


def t975(df):
    if df < 1:
        raise ValueError(f"no t quantile for {df} degrees of freedom")
    if df > max(T975):
        return 1.960
    return T975[max(k for k in T975 if k <= df)]


def mean_ci(values):
    """(mean, half-width of the 95 % interval); the half-width is None for one value."""
    values = list(values)
    if not values:
        raise ValueError("mean_ci of no values")
    m = statistics.fmean(values)
    if len(values) < 2:
        return m, None
    return m, t975(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))


def delta(sign, value, base):
    """LibMTL's Δ_t in %: positive means better than the baseline."""
    return sign * (value - base) / base * 100 if base else float("nan")


def verdict(diffs):
    """(mean, half, word) for the paired differences strategy − reference."""
    m, half = mean_ci(diffs)
    n = len(diffs)
    if all(d == 0 for d in diffs):
        return m, half, "same Δp as static at every seed"
    if half is None:
        return m, half, "not distinguishable at 1 seed"
    if m - half > 0:
        return m, half, "better"
    if m + half < 0:
        return m, half, "worse"
    return m, half, f"not distinguishable at these {n} seeds"


def train_rows(examples, val_split):
    """The rows the trainer trains on (engine/trainer.cpp: the split's rows come off the end)."""
    return examples - int(float(examples) * val_split)


def steps_per_epoch(examples, val_split, batch):
    return -(-train_rows(examples, val_split) // batch)


def fmt_ci(m, half, digits, sign=False):
    s = f"{m:+.{digits}f}" if sign else f"{m:.{digits}f}"
    return s if half is None else f"{s} ± {half:.{digits}f}"


# ---------------------------------------------------------------------------------------------
# Runs

class Run:
    """One finished run: RUNS/NAME-seedS with its console output in RUNS/NAME-seedS.log."""

    def __init__(self, path):
        self.path = path
        with open(os.path.join(path, "test_metrics.json")) as f:
            self.test = json.load(f)
        with open(os.path.join(path, "metrics.jsonl")) as f:
            self.epochs = [json.loads(line) for line in f if line.strip()]
        self.conf = {}
        with open(os.path.join(path, "run.conf")) as f:
            for line in f:
                if "=" in line and not line.lstrip().startswith("#"):
                    key, value = line.split("=", 1)
                    self.conf[key.strip()] = value.strip()
        with open(path + ".log") as f:
            log = f.read()
        # "... 6000 train, 6000 test images ..." (IDX) or "... 6000 train / 6000 test 36x36 pairs" (MultiFashion)
        found = re.search(r"(\d+) train\b", log)
        if not found:
            raise SystemExit(f"mtl_stats.py: no training example count in {path}.log")
        self.examples = int(found.group(1))
        found = re.search(r"; device ([^;]+);", log)
        self.device = found.group(1).strip() if found else "unknown"
        self.val_split = float(self.conf.get("val-split", "0.1"))
        self.batch = int(self.conf.get("batch-size", "128"))
        self.steps = steps_per_epoch(self.examples, self.val_split, self.batch)

    def metric(self, task):
        # The task's first metric: accuracy (higher is better) or mae (lower is better).
        for name, sign in (("accuracy", 1), ("mae", -1)):
            if f"{task}_{name}" in self.test:
                return name, sign, self.test[f"{task}_{name}"]
        raise SystemExit(f"mtl_stats.py: no test metric for task {task} in {self.path}")

    def seconds_per_step(self):
        return statistics.fmean(e["seconds"] / self.steps for e in self.epochs)

    def epoch_mean(self, key, pair):
        values = [e.get(key, {}).get(pair) for e in self.epochs]
        values = [v for v in values if v is not None]
        return statistics.fmean(values) if values else None


def device_label(runs, run):
    """"CPU (model)" or "GPU (model)": the model from RUNS/device.txt, which mtl_report.sh writes."""
    kind = "CPU" if run.device.startswith("cpu") else "GPU"
    try:
        with open(os.path.join(runs, "device.txt")) as f:
            model = f.read().strip()
    except FileNotFoundError:
        model = ""
    return f"{kind} ({model})" if model else kind


def load(runs, name, seeds):
    try:
        return [Run(os.path.join(runs, f"{name}-seed{seed}")) for seed in seeds]
    except FileNotFoundError as e:
        raise SystemExit(f"mtl_stats.py: a run is missing or unfinished: {e.filename}")


# ---------------------------------------------------------------------------------------------
# The report

def report(a):
    seeds = a.seeds.split()
    tasks = a.tasks.split()
    n = len(seeds)
    meta = dict(item.split("=", 1) for item in a.meta)
    rows = [r.split("|", 2) for r in a.row]  # kind, label, run name
    alone = {t: load(a.runs, f"alone-{t}", seeds) for t in tasks}
    first = alone[tasks[0]][0]
    pair = f"{tasks[0]},{tasks[1]}"

    def cost_of(runs_dir, name):
        return [r.seconds_per_step() for r in load(runs_dir, name, seeds)]

    # Per row: per-seed runs, per-task values and Δ, Δp, costs.
    results = {}
    for kind, label, name in rows:
        per_seed = load(a.runs, name, seeds)
        r = {"kind": kind, "label": label, "name": name, "runs": per_seed, "values": {}, "deltas": {}}
        dp = [0.0] * n
        for t in tasks:
            vals = [run.metric(t)[2] for run in per_seed]
            sign = per_seed[0].metric(t)[1]
            ds = [delta(sign, v, alone[t][i].metric(t)[2]) for i, v in enumerate(vals)]
            r["values"][t], r["deltas"][t] = vals, ds
            dp = [x + d / len(tasks) for x, d in zip(dp, ds)]
        r["dp"] = dp
        r["cost"] = [run.seconds_per_step() for run in per_seed]
        r["gpu_cost"] = cost_of(a.gpu_runs, name) if a.gpu_runs else None
        r["weights"] = [statistics.fmean(run.epochs[-1].get("weights", {}).get(t, float("nan"))
                                         for run in per_seed) for t in tasks]
        cos = [run.epoch_mean("grad_cosine", pair) for run in per_seed]
        r["cos"] = statistics.fmean(cos) if all(c is not None for c in cos) else None
        results[label] = r
    static = next((r for r in results.values() if r["kind"] == "strategy" and r["label"] == "static"), None)
    alone_cost = {t: [run.seconds_per_step() for run in alone[t]] for t in tasks}
    alone_gpu_cost = {t: cost_of(a.gpu_runs, f"alone-{t}") for t in tasks} if a.gpu_runs else None

    def ratio(costs, ref):
        return mean_ci([c / s for c, s in zip(costs, ref)])

    for r in results.values():
        if static is None:
            r["verdict"] = None
        elif r is static:
            r["verdict"] = "reference"
        else:
            r["verdict"] = verdict([x - y for x, y in zip(r["dp"], static["dp"])])

    device = first.device
    on_gpu = not device.startswith("cpu")
    measured_full = device_label(a.runs, first)
    measured = "GPU" if on_gpu else "CPU"
    other = "CPU" if on_gpu else "GPU"

    # Main table
    header = ["strategy"]
    for t in tasks:
        name, sign, _ = first.metric(t)
        header += [f"{t} {name} {'↑' if sign > 0 else '↓'}", f"Δ {t} %"]
    header += ["Δp %", f"Δp − static (verdict, n = {n})", f"s/step × static ({measured})",
               "final weights", f"mean cos({pair})"]
    table = []
    row = ["each task alone (static, other weights 0)"]
    for t in tasks:
        row += [fmt_ci(*mean_ci([run.metric(t)[2] for run in alone[t]]), 4), "0 (baseline)"]
    row += ["0 (baseline)", "—", "—", "—", "—"]
    table.append(row)
    for r in results.values():
        row = [r["label"]]
        for t in tasks:
            row += [fmt_ci(*mean_ci(r["values"][t]), 4), fmt_ci(*mean_ci(r["deltas"][t]), 2, sign=True)]
        row.append(fmt_ci(*mean_ci(r["dp"]), 2, sign=True))
        if r["verdict"] is None:
            row.append("— (static not run)")
        elif r["verdict"] == "reference":
            row.append("(reference)")
        else:
            m, half, word = r["verdict"]
            row.append(f"{fmt_ci(m, half, 2, sign=True)}: {word}")
        row.append("n/a" if static is None else "1 (reference)" if r is static
                   else fmt_ci(*ratio(r["cost"], static["cost"]), 2))
        row.append(" / ".join(f"{w:.3f}" for w in r["weights"]))
        row.append("n/a" if r["cos"] is None else f"{r['cos']:+.3f}")
        table.append(row)

    # Cost table
    cost_header = ["strategy", f"s/step, {measured} (mean ± CI)", f"× static, {measured}", other]
    cost_rows = []
    gpu_note = ("not measured (DEVICE=cuda)" if on_gpu else "not measured (no GPU)")

    def other_cell(costs, ref, is_static=False):
        if costs is None:
            return gpu_note
        if is_static:
            return f"{fmt_ci(*mean_ci(costs), 5)} s, 1 (reference)"
        if ref is None:
            return fmt_ci(*mean_ci(costs), 5)
        return f"{fmt_ci(*mean_ci(costs), 5)} s, {fmt_ci(*ratio(costs, ref), 2)} × static"

    for r in results.values():
        cost_rows.append([r["label"], fmt_ci(*mean_ci(r["cost"]), 5),
                          "n/a" if static is None else "1 (reference)" if r is static
                          else fmt_ci(*ratio(r["cost"], static["cost"]), 2),
                          other_cell(r["gpu_cost"], static and static["gpu_cost"], r is static)])
    for t in tasks:
        cost_rows.append([f"{t} alone (static, other weights 0)", fmt_ci(*mean_ci(alone_cost[t]), 5),
                          "n/a" if static is None else fmt_ci(*ratio(alone_cost[t], static["cost"]), 2),
                          other_cell(alone_gpu_cost and alone_gpu_cost[t], static and static["gpu_cost"])])
    if a.gpu_runs:
        gpu_run = load(a.gpu_runs, rows[0][2], seeds[:1])[0]
        if gpu_run.device.startswith("cpu"):
            raise SystemExit(f"mtl_stats.py: GPU_RUNS {a.gpu_runs} trained on the CPU")
        cost_header[3] = f"{device_label(a.gpu_runs, gpu_run)}: s/step, × static"

    # Reading: facts only
    reading = []
    if static is not None:
        groups = {"better": [], "worse": [], "nd": [], "same": []}
        for r in results.values():
            if r["verdict"] in (None, "reference"):
                continue
            m, half, word = r["verdict"]
            item = f"{r['label']} ({fmt_ci(m, half, 2, sign=True)})"
            key = word if word in ("better", "worse") else "same" if word.startswith("same") else "nd"
            groups[key].append(item)
        none = "none"
        reading.append(f"- Better than static (Δp − static, 95 % CI above 0, {n} seeds): "
                       f"{', '.join(groups['better']) or none}.")
        reading.append(f"- Worse than static (CI below 0): {', '.join(groups['worse']) or none}.")
        reading.append(f"- Not distinguishable from static at these {n} seeds (CI contains 0): "
                       f"{', '.join(groups['nd']) or none}.")
        if groups["same"]:
            reading.append(f"- The same Δp as static at every seed (the same test metrics): "
                           f"{', '.join(groups['same'])}.")
        costs = {r["label"]: ratio(r["cost"], static["cost"]) for r in results.values() if r is not static}
        if costs:
            dearer = [f"{k} ({fmt_ci(m, h, 2)}×)" for k, (m, h) in costs.items() if h is not None and m - h > 1]
            cheaper = [f"{k} ({fmt_ci(m, h, 2)}×)" for k, (m, h) in costs.items() if h is not None and m + h < 1]
            lo = min(costs.items(), key=lambda kv: kv[1][0])
            hi = max(costs.items(), key=lambda kv: kv[1][0])
            reading.append(f"- Seconds per step ({measured}) relative to static: from {lo[1][0]:.2f}× "
                           f"({lo[0]}) to {hi[1][0]:.2f}× ({hi[0]}); above static beyond the seed "
                           f"noise (CI above 1): {', '.join(dearer) or none}; below (CI below 1): "
                           f"{', '.join(cheaper) or none}.")
    best = max(results.values(), key=lambda r: statistics.fmean(r["dp"]))
    worst = min(results.values(), key=lambda r: statistics.fmean(r["dp"]))
    reading.append(f"- Highest mean Δp: {best['label']} ({fmt_ci(*mean_ci(best['dp']), 2, sign=True)}); "
                   f"lowest: {worst['label']} ({fmt_ci(*mean_ci(worst['dp']), 2, sign=True)}).")

    limit = meta["limit"]
    trained, reused = int(meta["trained"]), int(meta["reused"])
    elapsed = int(meta["elapsed"])
    tr = train_rows(first.examples, first.val_split)
    lines = [f"# Gradient balancing on {a.preset}: {len(results)} strategies over {n} seeds vs single-task baselines", ""]
    lines += [
        f"- Date {meta['date']}; polytask checkout at commit {meta['commit']}; binary {meta['binary']} "
        f"(modified {meta['binary_time']}). Device: {measured_full}, `--device {device}`; OMP_NUM_THREADS={meta['threads']}, "
        f"{meta['parallel']} runs at a time.",
        f"- Data: {first.conf.get('data', meta.get('data', '?'))}, at most {limit if limit != '0' else 'all'} "
        f"examples per split (`--limit {limit}`): {first.examples} training examples, of which "
        f"{first.examples - tr} are held out for validation (`--val-split {first.val_split:g}`) and {tr} "
        f"train, and {first.test.get('examples', '?')} test examples; {len(first.epochs)} epoch{'s' if len(first.epochs) != 1 else ''}, batch "
        f"{first.batch}, {first.conf.get('optimizer', '?')} {first.conf.get('lr', '?')}; seeds "
        f"{', '.join(seeds)} — every run (each strategy and each single-task baseline) once per seed.",
        "- Every strategy with its defaults (docs/balancers.md), starting from the loss weights the "
        "preset configures. Single-task baselines: the same preset, static weights, every other "
        "task's loss weight 0 (the other heads run forward but get no gradient).",
        f"- Metrics: mean ± 95 % confidence interval over the {n} seeds (Student t, n − 1 degrees of "
        f"freedom). Δ_t = (M − M_alone)/M_alone·100, sign-flipped for lower-is-better metrics (↓), "
        f"computed per seed against that seed's single-task baseline (positive: better than the task "
        f"alone); Δp = the mean of Δ_t over the tasks (LibMTL's Δp), per seed, then mean ± CI.",
        f"- Verdict: the per-seed difference Δp(strategy) − Δp(static), mean ± 95 % CI: \"better\" "
        f"when the interval lies above 0, \"worse\" when below, otherwise not distinguishable at "
        f"these {n} seeds.",
        f"- Final weights: the last epoch's mean weights, averaged over the seeds. cos: the mean "
        f"cosine between the first two tasks' gradients at the shared representation over all steps "
        f"(negative = conflict), averaged over the seeds.",
        f"- Cost: seconds per training step = an epoch's seconds / its {first.steps} steps "
        f"(ceil({tr} / {first.batch})), averaged over the epochs; the ratio to static is the mean of "
        f"the per-seed ratios. metrics.jsonl has no train-only time, so the epoch seconds include the "
        f"validation pass (a forward pass over {first.examples - tr} rows, the same for every "
        f"strategy); it makes the ratios slightly closer to 1 than the steps alone would be.",
        f"- The runs trained seed by seed, each seed's block in a rotated order; other work on the "
        f"machine adds noise to the seconds: load average {meta['load_before']} before and "
        f"{meta['load_after']} after; "
        f"{elapsed // 60} min {elapsed % 60} s for the whole report ({trained} runs trained, "
        f"{reused} reused from RUNS).",
        "", "Command:", "", "```sh", meta["command"], "```", "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in table]
    lines += ["", "## Cost per step", "",
              "| " + " | ".join(cost_header) + " |",
              "| " + " | ".join("---" for _ in cost_header) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in cost_rows]
    lines += ["", "## Reading (generated: the facts of the tables above)", ""] + reading + [""]
    with open(a.out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


# ---------------------------------------------------------------------------------------------
# Self-test

def self_test():
    def close(x, y, tol=1e-3):
        assert abs(x - y) <= tol, (x, y)

    m, h = mean_ci([1, 2, 3, 4, 5])
    close(m, 3)
    close(h, 2.776 * math.sqrt(2.5) / math.sqrt(5))  # 1.9630
    close(h, 1.963)
    m, h = mean_ci([2.0, 4.0])  # sd √2, t(1) = 12.706: 12.706 · √2/√2
    close(m, 3)
    close(h, 12.706)
    assert mean_ci([7.5]) == (7.5, None)
    close(t975(4), 2.776, 0)
    close(t975(35), 2.042, 0)  # between 30 and 40: the smaller df
    close(t975(1000), 1.960, 0)
    close(delta(1, 0.9, 0.8), 12.5)  # accuracy up: better
    close(delta(-1, 0.02, 0.016), -25.0)  # MAE up: worse
    assert verdict([1.0, 1.1, 0.9, 1.0, 1.2])[2] == "better"
    assert verdict([-1.0, -1.1, -0.9, -1.0, -1.2])[2] == "worse"
    m, h, word = verdict([1.0, 2.0, 3.0, -4.0, 0.5])
    assert word == "not distinguishable at these 5 seeds", word
    assert verdict([0.0, 0.0, 0.0])[2].startswith("same")
    assert verdict([0.4])[2] == "not distinguishable at 1 seed"
    # Steps: --limit 600 keeps 540 training rows (60 validation), 5 steps of 128; 30000: 211.
    assert train_rows(600, 0.1) == 540 and steps_per_epoch(600, 0.1, 128) == 5
    assert steps_per_epoch(30000, 0.1, 128) == 211
    assert steps_per_epoch(60000, 0.1, 128) == 422
    assert steps_per_epoch(512, 0.0, 128) == 4
    assert fmt_ci(3, 1.96303, 4) == "3.0000 ± 1.9630"
    assert fmt_ci(0.5, None, 2, sign=True) == "+0.50"
    print("mtl_stats.py: self-test passed (mean/CI of [1..5] = 3 ± 1.9630)")


def main():
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        return
    p = argparse.ArgumentParser(description="the Markdown of bench/mtl_report.sh")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("report")
    r.add_argument("--runs", required=True, help="the run directories: NAME-seedS and NAME-seedS.log")
    r.add_argument("--gpu-runs", help="the RUNS of a DEVICE=cuda report with the same settings (timings only)")
    r.add_argument("--out", required=True)
    r.add_argument("--preset", required=True)
    r.add_argument("--tasks", required=True, help="the preset's tasks, space-separated")
    r.add_argument("--seeds", required=True, help="space-separated")
    r.add_argument("--row", action="append", default=[], help="KIND|LABEL|RUN NAME (strategy or extra)")
    r.add_argument("--meta", action="append", default=[], help="KEY=VALUE for the header")
    report(p.parse_args())


if __name__ == "__main__":
    main()
