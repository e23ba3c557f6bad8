#!/usr/bin/env python3
"""Alpha-beta model of data-parallel PTB medium/large training beyond this machine.

  python3 bench/scaling_model.py > bench/results/scaling_model.md

Per all-reduce of n bytes over p GPUs (NCCL picks the faster of the two):
  ring: 2(p-1) alpha + 2(p-1)/p * n / B
  tree: 2 log2(p) alpha + 2 n / B          (double binary tree, pipelined)
with B and alpha of the slowest link the collective crosses: NVLink within a node of 8
GPUs, InfiniBand (one NIC per GPU) across nodes. Gradients are all-reduced in buckets in
the order backward produces them (decoder, top LSTM layer ... bottom layer, embedding last);
a bucket starts when its last gradient is ready and buckets share the network one at a
time. Exposed communication = the end of the last bucket's all-reduce minus the end of
backward; efficiency = compute / (compute + exposed). Weak scaling: 20 sequences per GPU.
With --sparse_embedding_grad (distrnn's default, gradient_reducer.h Note [row-sparse
gradients]) the embedding leaves the buckets and is exchanged after backward as the rows
each GPU's 700 tokens touched (ring all-gather: (p-1) alpha + (p-1) * piece / B), or as
the whole table when that is cheaper, as distrnn decides per step.
Every figure below is an assumption stated in LINKS and MODELS, not a measurement.
"""
import math

# Links. NVLink 4 (H100 SXM): 900 GB/s per GPU both directions together, 450 each way; NCCL
# reaches ~80% of it. InfiniBand NDR: 400 Gb/s = 50 GB/s each way per NIC, one NIC per GPU
# (DGX H100), ~80% reached. alpha: per-hop latency including NCCL's own overhead.
LINKS = {"nvlink": {"GBps": 360.0, "alpha_us": 3.0}, "ib": {"GBps": 40.0, "alpha_us": 6.0}}
GPUS_PER_NODE = 8

# Zaremba et al. 2014: medium (2 x 650, 35 steps, batch 20, 39 epochs) "half a day", large
# (2 x 1500, 55 epochs) "an entire day" on an NVIDIA K20: ~0.83 and ~1.18 s per step. On a
# current GPU the step is assumed to run at 5 TFLOP/s (a quarter of an A100's FP32 peak; a
# batch-20 recurrence does not fill the GPU): FLOPs = 3 x forward (backward is twice it).
EFFECTIVE_TFLOPS = 5.0
VOCAB, STEPS, BATCH = 10000, 35, 20
MODELS = {"medium": 650, "large": 1500}


def parameters(h):
    """(name, count, backward FLOPs per token) in the order backward produces gradients."""
    lstm = 4 * h * (2 * h) + 8 * h
    return [("decoder", h * VOCAB + VOCAB, 4 * h * VOCAB),
            ("lstm2", lstm, 4 * 4 * h * 2 * h),
            ("lstm1", lstm, 4 * 4 * h * 2 * h),
            ("embedding", VOCAB * h, 0)]


def allreduce_s(nbytes, p):
    if p == 1:
        return 0.0
    link = LINKS["nvlink" if p <= GPUS_PER_NODE else "ib"]
    alpha, bw = link["alpha_us"] * 1e-6, link["GBps"] * 1e9
    ring = 2 * (p - 1) * alpha + 2 * (p - 1) / p * nbytes / bw
    tree = 2 * math.log2(p) * alpha + 2 * nbytes / bw
    return min(ring, tree)


def allgather_s(piece_bytes, p):
    """Ring all-gather: every GPU receives the other p-1 pieces."""
    if p == 1:
        return 0.0
    link = LINKS["nvlink" if p <= GPUS_PER_NODE else "ib"]
    alpha, bw = link["alpha_us"] * 1e-6, link["GBps"] * 1e9
    return (p - 1) * alpha + (p - 1) * piece_bytes / bw


def embedding_exchange_s(h, p):
    """The touched rows (at most one per token: ids + rows), or the whole table if cheaper."""
    rows = STEPS * BATCH
    return min(allgather_s(rows * (8 + 4 * h), p), allreduce_s(VOCAB * h * 4, p))


def step(h, p, bucket_bytes, sparse_embedding=False):
    params = parameters(h)
    if sparse_embedding:
        params = [x for x in params if x[0] != "embedding"]
    tokens = STEPS * BATCH
    forward_flops = sum(f for _, _, f in params) / 2 * tokens
    backward_s = 2 * forward_flops / (EFFECTIVE_TFLOPS * 1e12)
    compute_s = 3 * forward_flops / (EFFECTIVE_TFLOPS * 1e12)
    total_backward = sum(f for _, _, f in params) * tokens
    # Cut the gradients into buckets of bucket_bytes in ready order; each bucket is ready when
    # its last byte is (time proportional to the backward FLOPs done by then).
    clock, network_free, filled = 0.0, 0.0, 0
    for _, count, flops in params:
        remaining = count * 4
        per_byte_s = flops * tokens / total_backward * backward_s / remaining
        while remaining > 0:
            take = min(remaining, bucket_bytes - filled)
            clock += take * per_byte_s
            filled += take
            remaining -= take
            if filled == bucket_bytes:
                network_free = max(network_free, clock) + allreduce_s(filled, p)
                filled = 0
    if filled:
        network_free = max(network_free, clock) + allreduce_s(filled, p)
    if sparse_embedding:  # the embedding's gradient is ready when backward ends
        network_free = max(network_free, backward_s) + embedding_exchange_s(h, p)
    exposed = max(0.0, network_free - backward_s)
    return compute_s, exposed


def main():
    sizes_mib = [1, 4, 25, 64, 256]
    print("| model | grad MiB | compute ms/step | GPUs | all-reduce of all grads ms | exposed ms "
          "(25 MiB buckets) | efficiency | best bucket | exposed ms (best) | efficiency (best) | "
          "embedding as touched rows: exposed ms (25 MiB) | efficiency |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, h in MODELS.items():
        grad_bytes = sum(c for _, c, _ in parameters(h)) * 4
        for p in (8, 64, 512):
            compute, exposed = step(h, p, 25 << 20)
            best = min(sizes_mib, key=lambda mib: step(h, p, mib << 20)[1])
            _, best_exposed = step(h, p, best << 20)
            _, rows_exposed = step(h, p, 25 << 20, sparse_embedding=True)
            print(f"| {name} | {grad_bytes / 2**20:.0f} | {compute * 1e3:.1f} | {p} | "
                  f"{allreduce_s(grad_bytes, p) * 1e3:.2f} | {exposed * 1e3:.2f} | "
                  f"{compute / (compute + exposed):.0%} | {best} MiB | {best_exposed * 1e3:.2f} | "
                  f"{compute / (compute + best_exposed):.0%} | {rows_exposed * 1e3:.2f} | "
                  f"{compute / (compute + rows_exposed):.0%} |")


if __name__ == "__main__":
    main()
