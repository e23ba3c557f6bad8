#!/usr/bin/env python3
"""Training curves from distrnn's metrics.jsonl, as PNGs.

  launch/plot.py RUN_DIR [RUN_DIR ...]
      Each run dir gets steps.png (train loss, and train accuracy where measured, per
      logged step) and epochs.png (per whole epoch: perplexity of train/valid/test for
      language models; loss and accuracy of train/valid/test otherwise; for the copy
      task, accuracy at the train and at the test length, and with a curriculum over K
      the K of each epoch and the accuracy at it).
  launch/plot.py --compare OUT.png [--title T] RUN_DIR [RUN_DIR ...]
      One figure of the train loss and accuracy per step of several runs (e.g. each cell
      and seed of the copy task), labelled by run dir name.

Runs with the project's virtual environment (launch/setup.sh installs matplotlib there):
  "$(cat build/python_path)" launch/plot.py runs/ptb_small
A resumed run logs the steps after its last checkpoint twice: the later record wins.
Exits 2 with one line on a missing or malformed metrics file.
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402


class MetricsError(Exception):
    pass


def read_metrics(run_dir):
    """The records of run_dir/metrics.jsonl, grouped by type."""
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.isfile(path):
        raise MetricsError(f"{path}: no such file (is {run_dir} a distrnn run dir?)")
    records = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            # A run killed mid-write leaves a partial last line; anything else is damage.
            if number == len(lines):
                break
            raise MetricsError(f"{path}:{number}: not JSON ({e.msg})") from None
        if not isinstance(record, dict) or "type" not in record:
            raise MetricsError(f"{path}:{number}: a record without a 'type'")
        records.setdefault(record["type"], []).append(record)
    if not records.get("progress") and not records.get("valid"):
        raise MetricsError(f"{path}: no progress or valid records yet")
    return records


def last_per(records, key):
    """One record per value of `key` (the last logged), in key order."""
    by_key = {}
    for r in records:
        if key in r:
            by_key[r[key]] = r
    return [by_key[k] for k in sorted(by_key)]


def series(records, x, y):
    points = [(r[x], r[y]) for r in records if y in r and r[y] is not None]
    return [p[0] for p in points], [p[1] for p in points]


def kind_of(records):
    valid = records.get("valid", [])
    keys = set().union(*(r.keys() for r in valid)) if valid else set()
    if "valid_ppl" in keys:
        return "lm"
    if "valid_position_accuracy" in keys or "valid_step_accuracy" in keys:
        return "copy"
    if "valid_accuracy" in keys:
        return "classification"
    return "other"


def label_axes(ax, xlabel, ylabel):
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def save(fig, title, out):
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_steps(run_dir, records, out):
    steps = last_per(records.get("progress", []), "global_step")
    has_acc = any("accuracy" in r for r in steps)
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(11 if has_acc else 6, 4), squeeze=False)
    ax = axes[0][0]
    ax.plot(*series(steps, "global_step", "loss"), lw=1)
    label_axes(ax, "step", "train loss (mean over the logged interval)")
    if has_acc:
        ax = axes[0][1]
        ax.plot(*series(steps, "global_step", "accuracy"), lw=1, color="tab:green")
        label_axes(ax, "step", "train accuracy")
    save(fig, f"{os.path.basename(os.path.normpath(run_dir))}: per step", out)


def plot_per_epoch(ax, lines, final, final_key, final_label):
    """`lines`: (records, key, label) drawn per epoch where present; the run's final test
    figure `final_key` as a dotted line."""
    for rs, key, label in lines:
        xs, ys = series(rs, "epoch", key)
        if xs:
            ax.plot(xs, ys, marker="o", ms=3, label=label)
    if final and final_key in final[-1]:
        ax.axhline(final[-1][final_key], ls=":", color="gray", label=final_label(final[-1][final_key]))


def plot_epochs(run_dir, records, out):
    """Returns the y labels of the panels drawn."""
    kind = kind_of(records)
    train = last_per(records.get("train_epoch", []), "epoch")
    valid = last_per([r for r in records.get("valid", []) if r.get("complete", True)], "epoch")
    final = records.get("test", [])
    name = os.path.basename(os.path.normpath(run_dir))
    if kind == "lm":
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        plot_per_epoch(ax, ((train, "train_ppl", "train"), (valid, "valid_ppl", "valid"), (valid, "test_ppl", "test")),
                       final, "test_ppl", lambda v: f"final test {v:.1f}")
        ax.set_yscale("log")
        label_axes(ax, "epoch", "perplexity")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
        save(fig, f"{name}: per epoch", out)
        return ["perplexity"]
    curriculum = kind == "copy" and any("curriculum_level" in r for r in valid)
    if kind == "copy":
        acc = (("valid_position_accuracy", "train length, all steps"),
               ("test_length_position_accuracy", "test length, all steps"),
               ("valid_step_accuracy", "train length, copied segment"),
               ("test_length_step_accuracy", "test length, copied segment"))
        loss = (("valid_loss", "train length"), ("test_length_loss", "test length"))
        if curriculum:  # the copied segment at the K the epoch trained on
            acc += (("level_step_accuracy", "curriculum K, copied segment"),)
    else:
        acc = (("valid_accuracy", "valid"), ("test_accuracy", "test"))
        loss = (("valid_loss", "valid"), ("test_loss", "test"))
    fig, axes = plt.subplots(1, 3 if curriculum else 2, figsize=(16 if curriculum else 11, 4))
    ax_loss, ax_acc = axes[0], axes[1]
    plot_per_epoch(ax_loss, [(train, "train_loss", "train")] + [(valid, k, label) for k, label in loss],
                   final, "test_loss", lambda v: f"final test {v:.4f}")
    plot_per_epoch(ax_acc, [(train, "train_accuracy", "train")] + [(valid, k, label) for k, label in acc],
                   final, "test_accuracy", lambda v: f"final test {100 * v:.2f}%")
    panels = [(ax_loss, "loss"), (ax_acc, "accuracy")]
    for ax, label in panels:
        label_axes(ax, "epoch", label)
        ax.legend(fontsize=8)
    if curriculum:
        ax = axes[2]
        ax.step(*series(valid, "epoch", "curriculum_level"), where="post")
        label_axes(ax, "epoch", "curriculum K (symbols to copy)")
        panels.append((ax, "curriculum K (symbols to copy)"))
    save(fig, f"{name}: per epoch", out)
    return [label for _, label in panels]


def plot_compare(run_dirs, out, title):
    runs = [(os.path.basename(os.path.normpath(d)), read_metrics(d)) for d in run_dirs]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.5))
    # More runs than the default 10 colours: tab20, so no two curves share a colour.
    colors = plt.cm.tab20.colors if len(runs) > 10 else plt.cm.tab10.colors
    for i, (name, records) in enumerate(runs):
        color = colors[i % len(colors)]
        steps = last_per(records.get("progress", []), "global_step")
        ax_loss.plot(*series(steps, "global_step", "loss"), lw=1, color=color, label=name)
        ax_acc.plot(*series(steps, "global_step", "accuracy"), lw=1, color=color, label=name)
    for ax, label in ((ax_loss, "train loss"), (ax_acc, "train accuracy")):
        label_axes(ax, "step", label)
    ax_loss.legend(fontsize=7, ncol=2)
    save(fig, title, out)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dirs", nargs="+")
    parser.add_argument("--compare", metavar="OUT.png", help="one figure of several runs' step curves")
    parser.add_argument("--title", default="train curves")
    args = parser.parse_args(argv)
    try:
        if args.compare:
            plot_compare(args.run_dirs, args.compare, args.title)
            print(f"[plot] wrote {args.compare}")
            return 0
        for run_dir in args.run_dirs:
            records = read_metrics(run_dir)
            for name, fn in (("steps.png", plot_steps), ("epochs.png", plot_epochs)):
                out = os.path.join(run_dir, name)
                fn(run_dir, records, out)
                print(f"[plot] wrote {out}")
    except (MetricsError, OSError) as e:
        print(f"plot: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
