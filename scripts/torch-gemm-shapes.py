#!/usr/bin/env python3
"""GFLOP/s of PyTorch's (MKL's) torch.mm on each layer-product shape of one training step,
the counterpart of `cargo run --release --example gemm_shapes`: same shapes, same operand
layouts (transposes as views), the same threads and best-of-rounds, shapes alternated.

    python3 scripts/torch-gemm-shapes.py [d_model=512] [threads=2] [rounds=5]
"""
import sys
import time

import torch

c, threads, rounds = (int(a) for a in (sys.argv[1:] + ["512", "2", "5"][len(sys.argv) - 1:]))
torch.set_num_threads(threads)
rows = 16 * 256
# (label, m, n, k, lhs transposed, rhs transposed), as examples/gemm_shapes.rs lists them.
shapes = [
    ("fwd qkv    x·Wᵀ", rows, 3 * c, c, False, True),
    ("fwd proj   x·Wᵀ", rows, c, c, False, True),
    ("fwd fc     x·Wᵀ", rows, 4 * c, c, False, True),
    ("fwd fc2    x·Wᵀ", rows, c, 4 * c, False, True),
    ("bwd dx fc2 dy·W", rows, 4 * c, c, False, False),
    ("bwd dx fc  dy·W", rows, c, 4 * c, False, False),
    ("bwd dx qkv dy·W", rows, c, 3 * c, False, False),
    ("bwd dW fc2 dyᵀ·x", c, 4 * c, rows, True, False),
    ("bwd dW fc  dyᵀ·x", 4 * c, c, rows, True, False),
    ("bwd dW qkv dyᵀ·x", 3 * c, c, rows, True, False),
]
best = [float("inf")] * len(shapes)
for _ in range(rounds):
    for i, (_, m, n, k, lt, rt) in enumerate(shapes):
        a = torch.randn(k, m).t() if lt else torch.randn(m, k)
        b = torch.randn(n, k).t() if rt else torch.randn(k, n)
        out = torch.empty(m, n)
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        best[i] = min(best[i], time.perf_counter() - start)
print(f"d_model {c}, {rows} rows, {threads} threads, best of {rounds} alternated rounds (torch {torch.__version__})")
for (label, m, n, k, _, _), t in zip(shapes, best):
    print(f"{label:18} m {m:5} n {n:5} k {k:5}  {2 * m * n * k / t / 1e9:6.1f} GFLOP/s")
