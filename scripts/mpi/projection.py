#!/usr/bin/env python3
"""Projected scaling of cafe-lab's MPI levels, on paper: iteration and evaluation time on N
ranks for CIFAR-10, CIFAR-100 and TinyImageNet at ipc 1, 10, 50, from per-image compute costs
measured on this project's CPU workloads and an interconnect that the caller states.

    python3 scripts/mpi/projection.py [--bandwidth-gbs 10] [--latency-us 5] > projection.md

Model (README "Several processes (MPI)"): a step's shared work (per class, the matching terms;
per network, an evaluation) is split into ceil(items / N) per rank; what is replicated (DC's and
CAFE's inner loop on the whole synthetic set) is not; every all-gather of B bytes in all costs
(N - 1) / N * B / bandwidth + ceil(log2 N) * latency (ring / recursive doubling). Efficiency is
speed-up / N; a level scales up to the rank count after which doubling gives less than 10 %
more speed.

Per-image costs, one core, ConvNet-3 width 128 on 32x32 inputs (the project's side-by-side
workloads, README "Performance and benchmarks", 2 threads, halved per core would be optimistic,
so the 2-thread times are used as one core's): forward + backward 3.35 ms (expert_epoch: 200.95 s
for 60 000 images); forward only ~1/3 of that. DM's class term at ipc 10 (256 real forward + 10
synthetic forward/backward) 0.355 s (distribution_ipc10 / 10 classes); DC's class term at ipc 1
with second order 0.76 s (gradient_ipc1 / 10); CAFE's 0.545 s (cafe_step_ipc10 / 10).
TinyImageNet (64x64, ConvNet depth 4): 4x the pixels, costs x 4, embedding 2048.
"""
import argparse
import math

p = argparse.ArgumentParser()
p.add_argument("--bandwidth-gbs", type=float, default=10.0, help="all-gather bandwidth, GB/s")
p.add_argument("--latency-us", type=float, default=5.0)
a = p.parse_args()
BW = a.bandwidth_gbs * 1e9
LAT = a.latency_us * 1e-6

FWD_BWD = 3.35e-3  # s per image, forward + backward
FWD = FWD_BWD / 3
DATASETS = {  # classes, floats per image, cost factor, embedding size
    "CIFAR-10": (10, 3 * 32 * 32, 1.0, 2048),
    "CIFAR-100": (100, 3 * 32 * 32, 1.0, 2048),
    "TinyImageNet": (200, 3 * 64 * 64, 4.0, 2048),
}
# DC's loop table (DatasetCondensation main.py:129-139): ipc -> (outer_loop, inner_loop).
DC_LOOPS = {1: (1, 1), 10: (10, 50), 50: (50, 10)}
RANKS = [1, 2, 4, 8, 16, 32, 64]
BATCH_REAL = 256


def gather(total_bytes, n):
    if n == 1:
        return 0.0
    return (n - 1) / n * total_bytes / BW + math.ceil(math.log2(n)) * LAT


def step_times(method, ds, ipc, n):
    classes, pixels, factor, emb = DATASETS[ds]
    per_rank = math.ceil(classes / n)
    set_bytes = classes * ipc * pixels * 4
    if method == "DM":
        term = factor * (BATCH_REAL * FWD + 3 * ipc * FWD_BWD)
        return per_rank * term + gather(set_bytes + 8 * classes, n)
    if method == "DM on ConvNetBN":
        # DM's step plus the class-synchronised BatchNorm: per BN layer (depth 3, 4 for
        # TinyImageNet; width 128) three gathers per forward (counts, sums, squared deviations;
        # a real and a synthetic forward) and one per backward (sums of g and g x_hat).
        depth, width = (4 if ds == "TinyImageNet" else 3), 128
        term = factor * (BATCH_REAL * FWD + 3 * ipc * FWD_BWD)
        fwd = [8 * classes, 8 * classes * width, 8 * classes * width]
        bwd = 8 * (n + 2 * classes * width)
        bn = depth * (2 * sum(gather(b, n) for b in fwd) + gather(bwd, n))
        return per_rank * term + gather(set_bytes + 8 * classes, n) + bn
    if method == "CAFE":
        # matching steps (layer-wise terms per class) with the shared discriminant's gathers,
        # and the inner loop on the whole set, replicated; both as DC's loop table, an upper
        # bound on the inner loop (CAFE's watchers stop it earlier).
        outer, inner = DC_LOOPS[ipc]
        term = factor * (BATCH_REAL * FWD + 3 * ipc * FWD_BWD)
        extra = classes * emb * 4 + classes * BATCH_REAL * emb * 4
        matching = outer * (per_rank * term + gather(set_bytes + 8 * classes + extra, n))
        inner_loop = (outer - 1) * inner * classes * ipc * factor * FWD_BWD
        return matching + inner_loop
    if method == "DC":
        outer, inner = DC_LOOPS[ipc]
        # per class: real gradients (forward + backward of 256) and the synthetic gradient
        # differentiated again (about 3x a forward + backward of ipc images)
        term = factor * (BATCH_REAL * FWD_BWD + 3 * 3 * ipc * FWD_BWD)
        matching = outer * (per_rank * term + gather(set_bytes + 8 * classes, n))
        inner_loop = (outer - 1) * inner * classes * ipc * factor * FWD_BWD  # replicated
        return matching + inner_loop
    raise ValueError(method)


def eval_time(ds, ipc, n, nets=20, epochs=1000, test=10000):
    classes, _, factor, _ = DATASETS[ds]
    per_net = factor * ((epochs + 1) * classes * ipc * FWD_BWD + test * FWD)
    return math.ceil(nets / n) * per_net + gather(nets * (classes + 1) * 8, n)


def row(label, times):
    t1 = times[0]
    speed = [t1 / t for t in times]
    # The last rank count after which doubling gives less than 10 % more speed.
    stop = next((RANKS[i - 1] for i in range(1, len(RANKS)) if speed[i] < 1.1 * speed[i - 1]), None)
    cells = " | ".join(f"{s:.1f}" for s in speed[1:])
    return f"| {label} | {t1:.3g} | {cells} | {stop if stop else '64 or more'} |"


print(f"Interconnect: {a.bandwidth_gbs:g} GB/s all-gather bandwidth, {a.latency_us:g} us latency.\n")
print("| workload | 1 rank, s | speed-up at " + " | ".join(str(n) for n in RANKS[1:]) + " ranks | scales up to (ranks) |")
print("|---|---:|" + "---:|" * (len(RANKS) - 1) + "---:|")
for ds in DATASETS:
    for ipc in (1, 10, 50):
        for method in ("DM", "DM on ConvNetBN", "DC", "CAFE"):
            print(row(f"{method} iteration, {ds} ipc {ipc}", [step_times(method, ds, ipc, n) for n in RANKS]))
        print(row(f"evaluation (20 nets x 1000 epochs), {ds} ipc {ipc}", [eval_time(ds, ipc, n) for n in RANKS]))
