#!/usr/bin/env python3
"""The sgemm peak of this machine's cores, through the same libtorch (MKL) that training uses:
the best of several 1024 x 1024 x 1024 float32 matmuls, with 1 thread and with all cores.
Prints one JSON object: {"gflops": {"1": ..., "2": ...}}.
"""
import json
import os
import time

import torch


def peak(threads, n=1024, repeats=30):
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    c = torch.empty(n, n)
    for _ in range(5):
        torch.mm(a, b, out=c)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b, out=c)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


cores = len(os.sched_getaffinity(0))
print(json.dumps({"gflops": {str(t): round(peak(t), 1) for t in sorted({1, cores})}, "torch": torch.__version__}))
