"""launch/plot.py over the metrics of a real (tiny) run: PNGs written, a resumed run's
repeated steps counted once, a half-written last line tolerated, bad input exit 2.
Run by CTest (label e2e) with the project's Python; argv: distrnn binary, source dir."""
import json
import os
import subprocess
import sys
import tempfile

BINARY, SOURCE = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(SOURCE, "launch"))
import plot  # noqa: E402

PLOT = [sys.executable, os.path.join(SOURCE, "launch", "plot.py")]
PNG = b"\x89PNG\r\n\x1a\n"
failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
        print(f"FAIL: {what}", file=sys.stderr)


def train(run_dir, *extra, check=True):
    return subprocess.run([BINARY, "train", "--task=copy", "--cell=lstm", "--hidden_size=16", "--embedding_size=8",
                    "--copy_train_symbols=3", "--copy_train_length=3", "--copy_test_symbols=5",
                    "--copy_test_length=5", "--copy_train_samples=64", "--copy_test_samples=16",
                    "--batch_size=8", "--eval_batch_size=16", "--steps_per_epoch=6", "--max_epochs=2",
                    "--log_every=2", "--threads=1", "--comm=local", f"--run_dir={run_dir}", *extra],
                          check=check, capture_output=True)


with tempfile.TemporaryDirectory() as tmp:
    run = os.path.join(tmp, "copy")
    # Dies before step 9; the last checkpoint is step 6's (epoch 1's end), so the resumed
    # run logs steps 7 and 8 a second time.
    died = train(run, "--fault_rank=0", "--fault_step=9", check=False)
    check(died.returncode != 0, "the fault run dies")
    train(run, "--resume=auto")
    records = plot.read_metrics(run)
    logged = [r["global_step"] for r in records["progress"]]
    check(len(logged) > len(set(logged)), f"the resumed run repeats logged steps: {logged}")
    steps = plot.last_per(records["progress"], "global_step")
    check([r["global_step"] for r in steps] == [2, 4, 6, 8, 10, 12], f"one point per step: {logged}")
    check(plot.kind_of(records) == "copy", "a copy run is recognised")
    out = subprocess.run(PLOT + [run], capture_output=True, text=True)
    check(out.returncode == 0, f"plot exit {out.returncode}: {out.stderr}")
    for name in ("steps.png", "epochs.png"):
        path = os.path.join(run, name)
        check(os.path.isfile(path) and open(path, "rb").read(8) == PNG, f"{name} is a PNG")
    compare = os.path.join(tmp, "compare.png")
    out = subprocess.run(PLOT + ["--compare", compare, run, run], capture_output=True, text=True)
    check(out.returncode == 0 and open(compare, "rb").read(8) == PNG, f"--compare: {out.stderr}")

    # A copy run with a curriculum gets a third panel: the K of each epoch.
    curriculum = os.path.join(tmp, "curriculum")
    train(curriculum, "--copy_curriculum_start=1", "--copy_curriculum_threshold=0")
    records = plot.read_metrics(curriculum)
    panels = plot.plot_epochs(curriculum, records, os.path.join(tmp, "curriculum.png"))
    check(panels == ["loss", "accuracy", "curriculum K (symbols to copy)"], f"curriculum panels: {panels}")
    check(plot.plot_epochs(run, plot.read_metrics(run), os.path.join(tmp, "plain.png")) == ["loss", "accuracy"],
          "no curriculum panel without a curriculum")

    with open(os.path.join(run, "metrics.jsonl"), "a") as f:
        f.write('{"type": "progress", "global_st')  # killed mid-write
    check(subprocess.run(PLOT + [run], capture_output=True).returncode == 0, "a partial last line is tolerated")

    bad = os.path.join(tmp, "bad")
    os.makedirs(bad)
    with open(os.path.join(bad, "metrics.jsonl"), "w") as f:
        f.write(json.dumps({"type": "progress", "global_step": 1, "loss": 1.0}) + "\nnot json\n{}\n")
    for args, what in (([bad], "a damaged line"), ([os.path.join(tmp, "none")], "a missing run dir")):
        out = subprocess.run(PLOT + args, capture_output=True, text=True)
        lines = out.stderr.strip().splitlines()
        check(out.returncode == 2 and len(lines) == 1 and lines[0].startswith("plot: error:"),
              f"{what}: exit {out.returncode}, stderr {out.stderr!r}")

sys.exit(1 if failures else 0)
