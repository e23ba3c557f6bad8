"""bench/reference/word_language_model.py, the PyTorch side of `launch/bench.sh compare`, on a
generated corpus: one process and DDP (gloo) on 2 ranks under torchrun train the same thing
(each rank takes its columns of the global batch, as distrnn does), and bench/summarise.py
declares a comparison void when the two sides' losses differ. Run by CTest (label e2e)
with the project's Python; argv: source dir."""
import json
import os
import random
import subprocess
import sys
import tempfile

SOURCE = sys.argv[1]
REFERENCE = os.path.join(SOURCE, "bench", "reference", "word_language_model.py")
SUMMARISE = os.path.join(SOURCE, "bench", "summarise.py")
TORCHRUN = os.path.join(os.path.dirname(sys.executable), "torchrun")
failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
        print(f"FAIL: {what}", file=sys.stderr)


def reference(*command, data, extra=()):
    args = [*command, REFERENCE, "--data", data, "--steps", "40", "--log_interval", "10", "--nhid", "16",
            "--threads", "1", *extra]
    done = subprocess.run(args, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    return done


def write_progress(path, loss):
    """distrnn's metrics.jsonl as summarise.py reads it: four progress records ending at `loss`."""
    with open(path, "w") as f:
        for step in (10, 20, 30, 40):
            f.write(json.dumps({"type": "progress", "step": step, "units_per_s": 1000.0,
                                "ms_per_step": 400.0, "loss": loss}) + "\n")


with tempfile.TemporaryDirectory() as tmp:
    data = os.path.join(tmp, "ptb")
    os.makedirs(data)
    rng = random.Random(7)
    words = [f"w{i}" for i in range(40)]
    with open(os.path.join(data, "ptb.train.txt"), "w") as f:
        for _ in range(1200):  # ~18,000 tokens: 40 steps x 20 x 20 need 16,001
            f.write(" " + " ".join(rng.choice(words[: rng.randint(5, 40)]) for _ in range(14)) + " \n")

    one = reference(sys.executable, data=data)
    check(one.returncode == 0, f"one process runs: {one.stderr[-500:]}")
    ddp = reference(TORCHRUN, "--standalone", "--nproc_per_node=2", data=data)
    check(ddp.returncode == 0, f"DDP on 2 ranks runs: {ddp.stderr[-500:]}")
    if one.returncode == 0 and ddp.returncode == 0:
        a, b = json.loads(one.stdout), json.loads(ddp.stdout)
        check(a["ranks"] == 1 and b["ranks"] == 2, f"ranks reported: {a['ranks']}, {b['ranks']}")
        check(a["steps"] == 40 and a["tok_per_s"] > 0 and a["whole_run_tok_per_s"] > 0, f"figures: {a}")
        check(a["last20_loss"] < 3.6, f"it learns (uniform over 41 words is 3.71): {a['last20_loss']}")
        # Same initial draws (seed, broadcast by DDP), each rank half of the same global batch,
        # averaged gradients: the same trajectory up to summation order.
        print("one process", a["last20_loss"], "DDP", b["last20_loss"])
        check(abs(a["last20_loss"] - b["last20_loss"]) < 5e-4,
              f"DDP trains what one process trains: {a['last20_loss']} vs {b['last20_loss']}")

        # summarise.py compare: agreeing losses pass, a loss 5% off voids the comparison.
        ours = os.path.join(tmp, "ours.jsonl")
        out = os.path.join(tmp, "out")
        os.makedirs(out)
        ref_json = os.path.join(tmp, "ref.json")
        with open(ref_json, "w") as f:
            json.dump(a, f)
        for loss, verdict in ((a["last20_loss"], 0), (a["last20_loss"] * 1.05, 1)):
            write_progress(ours, loss)
            done = subprocess.run([sys.executable, SUMMARISE, "compare", out, f"1x1:{ours}:{ref_json}"],
                                  capture_output=True, text=True)
            check(done.returncode == verdict, f"loss {loss:.4f}: exit {done.returncode}, wanted {verdict}")
        check("DIFFER" in done.stdout, "the void comparison says so")
        # Every pair counts, not only the first: a second pair 5% off voids the layout too.
        good, bad = os.path.join(tmp, "good.jsonl"), os.path.join(tmp, "bad.jsonl")
        write_progress(good, a["last20_loss"])
        write_progress(bad, a["last20_loss"] * 1.05)
        done = subprocess.run([sys.executable, SUMMARISE, "compare", out, f"1x1:{good},{bad}:{ref_json},{ref_json}"],
                              capture_output=True, text=True)
        check(done.returncode == 1 and "DIFFER" in done.stdout, f"a disagreeing second pair voids: exit {done.returncode}")

    odd = reference(TORCHRUN, "--standalone", "--nproc_per_node=2", data=data, extra=("--batch_size", "7"))
    check(odd.returncode != 0 and "not divisible" in odd.stdout + odd.stderr, "a global batch of 7 on 2 ranks is refused")

print("bench reference test:", "FAILED" if failures else "passed")
sys.exit(1 if failures else 0)
