#!/usr/bin/env python3
"""Turns the raw output of launch/bench.sh's runs into bench/results/<name>.{json,md,png}.

  summarise.py compare OUT LAYOUT:OURS_METRICS,...:REFERENCE_JSON,... ...
  summarise.py flops OUT LAYOUT:METRICS:SGEMM_JSON ...
  summarise.py scaling OUT CORES KIND:RANKS:METRICS ...
  summarise.py allreduce ALLREDUCE_JSON OUT
  summarise.py memory OUT CONFIG:FUSED:TIME_V_LOG ...
"""
import json
import os
import re
import statistics
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def records(path, kind):
    with open(path) as f:
        return [r for r in map(json.loads, filter(str.strip, f)) if r.get("type") == kind]


def git():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def write(out, name, result, header, rows):
    result = dict(result, bench=name, git=git())
    with open(os.path.join(out, f"{name}.json"), "w") as f:
        json.dump(result, f, indent=2)
    table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    table += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    with open(os.path.join(out, f"{name}.md"), "w") as f:
        f.write("\n".join(table) + "\n")
    print("\n".join(table))


def steady(progress):
    """tok/s and ms/step over the logged intervals after the first (warm-up)."""
    later = progress[1:] or progress
    return statistics.median(r["units_per_s"] for r in later), statistics.median(r["ms_per_step"] for r in later)


def compare(out, *runs):
    """runs: LAYOUT:OURS_METRICS,...:REFERENCE_JSON,... with LAYOUT = <processes>x<threads>; the
    i-th metrics and the i-th reference were measured back to back (one pair)."""
    rows, result, void = [], {"runs": []}, False
    for spec in runs:
        layout, ours_paths, ref_paths = spec.split(":", 2)
        pairs = []
        for ours_metrics, reference_json in zip(ours_paths.split(","), ref_paths.split(",")):
            progress = records(ours_metrics, "progress")
            with open(reference_json) as f:
                ref = json.load(f)
            pairs.append((steady(progress)[0], progress[-1]["loss"], ref))
        ratios = [tok / ref["tok_per_s"] for tok, _, ref in pairs]
        ours_tok = statistics.median(tok for tok, _, _ in pairs)
        ref_tok = statistics.median(ref["tok_per_s"] for _, _, ref in pairs)
        # Different initial draws and word ids: after the same steps the losses of every pair
        # agree within noise (2%); the pair furthest apart is reported.
        ours_loss, ref_loss = max(((loss, ref["last20_loss"]) for _, loss, ref in pairs),
                                  key=lambda p: abs(p[0] - p[1]) / p[1])
        agree = abs(ours_loss - ref_loss) <= 0.02 * ref_loss
        void |= not agree
        entry = {"layout": layout, "reference": pairs[0][2]["impl"], "pairs": len(pairs),
                 "distrnn_tok_per_s": ours_tok, "reference_tok_per_s": ref_tok, "ratios": ratios,
                 "ratio": statistics.median(ratios), "distrnn_last20_loss": ours_loss,
                 "reference_last20_loss": ref_loss, "losses_agree": agree}
        result["runs"].append(entry)
        rows.append([layout, entry["reference"], f"{ours_tok:,.0f}", f"{ref_tok:,.0f}",
                     f"{entry['ratio']:.2f}x ({min(ratios):.2f}-{max(ratios):.2f})",
                     f"{ours_loss:.3f} / {ref_loss:.3f}", "agree" if agree else "DIFFER: void"])
    best_ours = max(result["runs"], key=lambda r: r["distrnn_tok_per_s"])
    best_ref = max(result["runs"], key=lambda r: r["reference_tok_per_s"])
    result["best_layout_ratio"] = best_ours["distrnn_tok_per_s"] / best_ref["reference_tok_per_s"]
    rows.append([f"best: {best_ours['layout']} vs {best_ref['layout']}", "", f"{best_ours['distrnn_tok_per_s']:,.0f}",
                 f"{best_ref['reference_tok_per_s']:,.0f}", f"{result['best_layout_ratio']:.2f}x", "", ""])
    write(out, "compare", result, ["processes x threads", "PyTorch side", "distrnn tok/s (median)",
                                   "PyTorch tok/s (median)", "ratio: median of pairs (min-max)",
                                   "loss, last 20 steps (distrnn / PyTorch; pair furthest apart)", ""], rows)
    return 1 if void else 0


# FLOPs per trained token of PTB small: forward 2 x (LSTM 2 x 4H(I+H) + decoder H x V) with
# H = I = 200, V = 10,000; backward twice the forward (input and weight gradients).
PTB_SMALL_FLOP_PER_TOKEN = 3 * 2 * (2 * 4 * 200 * 400 + 200 * 10000)


def flops(out, *runs):
    """runs: LAYOUT:METRICS:SGEMM_JSON with LAYOUT = <processes>x<threads>; SGEMM_JSON is the
    sgemm peak (bench/sgemm_peak.py) measured just before that training run."""
    rows, result = [], {"flop_per_token": PTB_SMALL_FLOP_PER_TOKEN, "runs": []}
    for spec in runs:
        layout, path, sgemm_json = spec.split(":", 2)
        with open(sgemm_json) as f:
            peaks = json.load(f)["gflops"]
        processes, threads = map(int, layout.split("x"))
        tok, _ = steady(records(path, "progress"))
        cores = processes * threads
        # The cores' peak: the all-cores sgemm of one process, else one thread's times the cores.
        peak = peaks.get(str(cores)) or peaks["1"] * cores
        gflops = tok * PTB_SMALL_FLOP_PER_TOKEN / 1e9
        result["runs"].append({"layout": layout, "tok_per_s": tok, "gflops": gflops, "sgemm_gflops": peaks,
                               "peak_gflops": peak, "fraction": gflops / peak})
        rows.append([layout, f"{tok:,.0f}", f"{gflops:.1f}", f"{peak:.1f}", f"{100 * gflops / peak:.0f}%"])
    write(out, "flops", result, ["processes x threads", "tok/s", "training GFLOP/s",
                                 "sgemm peak GFLOP/s (measured just before)", "fraction of peak"], rows)
    return 0


def scaling(out, cores, *runs):
    cores = int(cores)
    rows, result = [], {"cores": cores, "runs": []}
    base = {}  # kind -> tok/s of its 1-rank run
    for spec in runs:
        kind, ranks, path = spec.split(":", 2)
        ranks = int(ranks)
        progress = records(path, "progress")
        tok, ms = steady(progress)
        # Rank 0's host time in the all-reduce after backward: the communication not hidden.
        later = progress[1:] or progress
        exposed = statistics.median(r.get("allreduce_ms_per_step", 0.0) for r in later)
        base.setdefault(kind, tok)
        entry = {"kind": kind, "ranks": ranks, "tok_per_s": tok, "ms_per_step": ms, "exposed_allreduce_ms": exposed,
                 "speedup": tok / base[kind], "oversubscribed": ranks > cores}
        result["runs"].append(entry)
        rows.append([kind, ranks, f"{tok:,.0f}", f"{ms:.1f}", f"{exposed:.1f} ({100 * exposed / ms:.0f}%)",
                     f"{entry['speedup']:.2f}", "yes" if entry["oversubscribed"] else ""])
    write(out, "scaling", result, ["scaling", "ranks", "tok/s", "ms/step", "all-reduce not hidden, ms/step (share)",
                                   "tok/s vs 1 rank", "oversubscribed"], rows)
    fig, ax = plt.subplots(figsize=(6, 4))
    for kind in ("strong", "weak"):
        pts = [(r["ranks"], r["tok_per_s"]) for r in result["runs"] if r["kind"] == kind]
        ax.plot(*zip(*sorted(pts)), marker="o", label=f"{kind} scaling")
    ax.axvline(cores + 0.5, ls=":", color="gray", label="cores of this machine")
    ax.set_xlabel("ranks")
    ax.set_ylabel("training tok/s (all ranks)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "scaling.png"), dpi=110)
    return 0


def allreduce(path, out):
    with open(path) as f:
        data = json.load(f)
    def ratio(r, key):
        return f"{r[key] / r['time_us']:.2f}" if key in r else ""

    # busbw ratios = inverse time ratios (same bytes): ours / raw MPI and reducer / raw MPI.
    rows = [[r["bytes"], f"{r['time_us']:.1f}", f"{r['algbw_GBps']:.3f}", f"{r['busbw_GBps']:.3f}",
             f"{r['raw_mpi_busbw_GBps']:.3f}" if "raw_mpi_busbw_GBps" in r else "",
             f"{r['raw_mpi_time_us'] / r['time_us']:.2f}" if "raw_mpi_time_us" in r else "",
             f"{r['raw_mpi_time_us'] / r['reducer_time_us']:.2f}" if "reducer_time_us" in r else "",
             ratio(r, "async_time_us")] for r in data["rows"]]
    write(out, "allreduce", data, ["bytes", "time us", "algbw GB/s", "busbw GB/s", "raw MPI busbw GB/s",
                                   "busbw: ours / raw MPI", "busbw: GradientReducer / raw MPI",
                                   "async / blocking time"], rows)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["bytes"] for r in data["rows"]], [r["busbw_GBps"] for r in data["rows"]], marker="o")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("bytes")
    ax.set_ylabel("busbw GB/s")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "allreduce.png"), dpi=110)
    return 0


def memory(out, *runs):
    rows, result = [], {"runs": []}
    for spec in runs:
        config, fused, path = spec.split(":", 2)
        with open(path) as f:
            text = f.read()
        rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) / 1024
        ms = [float(m) for m in re.findall(r"ms/step +([\d.]+)", text)]
        entry = {"config": config, "fused_loss": fused == "true", "peak_rss_mib": rss,
                 "ms_per_step": statistics.median(ms[1:] or ms) if ms else None}
        result["runs"].append(entry)
        rows.append([config, fused, f"{rss:,.0f}", f"{entry['ms_per_step']:.0f}" if ms else ""])
    write(out, "memory", result, ["config", "fused decoder + loss", "peak RSS MiB", "ms/step"], rows)
    return 0


if __name__ == "__main__":
    commands = {"compare": compare, "flops": flops, "scaling": scaling, "allreduce": allreduce, "memory": memory}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(commands[sys.argv[1]](*sys.argv[2:]))
