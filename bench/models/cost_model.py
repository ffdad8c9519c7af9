"""A model whose batch costs a + b*n: a fixed overhead plus real numpy work per input.

BENCH_A_MS and BENCH_B_MS set a and b. Each input is summed with numpy, then the call sleeps until
a + b*n has passed: a sleep rather than a busy loop keeps this 2-core machine's cores for the
frontend and the load generator, so what is measured is the serving system, not core contention.
Batching amortizes a, as with a real model whose per-batch overhead dominates small batches.
"""
import os
import time

import numpy as np

A = float(os.environ.get("BENCH_A_MS", "10")) / 1000.0
B = float(os.environ.get("BENCH_B_MS", "1")) / 1000.0


def predict(inputs):
    start = time.perf_counter()
    n = len(inputs)
    # The fixed cost (think: a kernel launch, a lock, a Python-level setup) and the per-input cost.
    target = start + A + B * n
    total = [float(np.asarray(x, dtype=np.float64).sum()) for x in inputs]
    remaining = target - time.perf_counter()
    if remaining > 0:
        time.sleep(remaining)
    return [str(t) for t in total]
