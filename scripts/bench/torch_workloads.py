#!/usr/bin/env python3
"""The cafe-lab benchmark workloads (benches/src/workloads.rs) written in PyTorch.

    python torch_workloads.py NAME[,NAME...] [--repeats N] [--warmup W] [--threads T]
                              [--device cpu|cuda] [--size cpu|gpu] [--precision fp32|tf32]
    python torch_workloads.py signature

runs W untimed and N timed runs of each workload and prints one JSON line per workload, like
`cafe-workload`: {"workload", "device", "size", "shape", "precision", "threads", "times_s",
"median_s", "outer_steps", "inner_epochs", "loss", "torch", "import_rss_mib", "gpu_peak_mib",
"gpu_reserved_peak_mib"}. `side_by_side.py` runs it in a subprocess per measurement, beside
the cafe-lab binary.

On a GPU (`--device cuda`) every run starts and ends with `torch.cuda.synchronize()`, the
peaks are `torch.cuda.max_memory_allocated` / `max_memory_reserved` over the timed runs, and
`--precision` sets cuDNN's convolutions to FP32 (`ieee`) or TF32 (PyTorch's default); matrix
products stay FP32 (PyTorch's default) in both. `--size gpu` takes the larger sizes of
benches/src/workloads.rs (`Size::Gpu`).

Each workload does the work its cafe-lab twin does, step for step (DESIGN.md and the
plugin sources):
- the network is DC's ConvNet: 3 x [conv 3x3 (128 ch; the first of a 1x28x28 input padded
  by 3) -> GroupNorm(128, 128) (instance norm, affine) -> ReLU -> AvgPool2d(2)] -> Linear;
- an iteration builds a fresh network, initialises the synthetic set (noise for DC, random
  real images for DM and CAFE), then repeats outer_loop times {sample 256 real images per
  class; matching loss; backward; image SGD step (momentum 0.5); unless last, inner_loop
  epochs of plain SGD (lr 0.01) on the synthetic set in batches of 256}, with the loop counts
  of cafe-lab's `fixed` scheduler (1 outer and 0 inner epochs at ipc 1: the inner loop is
  skipped after the last outer step, as in DC's reference) or `none` (1 outer step);
- DC (`gradient`): per class, the CE gradients of the real batch (detached) and of the
  synthetic images (create_graph=True), DC's `ours` distance, summed over classes;
- DM (`distribution`): per class, || mean real embedding - mean synthetic embedding ||^2,
  the network frozen (requires_grad False, as DM's reference; cafe-lab's candle backward
  also computes the unused weight gradients);
- CAFE (`cafe`), as plugins/src/matchers/cafe.rs: per class, block means (after ReLU,
  before pooling) weighted 0.1, 0.1, 1.0 and the embedding mean weighted 2.0, summed squared
  errors; plus 0.01 x the summed CE of the real embeddings classified by the per-class mean
  synthetic embeddings; real features computed without a graph.
"""

import argparse
import json
import math
import resource
import statistics
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:  # side_by_side.py checks first and says how to install it
    print("torch_workloads.py needs PyTorch: pip install torch", file=sys.stderr)
    sys.exit(2)

SHAPE = (1, 28, 28)
CLASSES = 10
MEAN, STD = 0.2861, 0.3530
BATCH_REAL = 256
CONVNET_BATCH = 256
EVAL_IPC = 50
EVAL_TEST_PER_CLASS = 1
EXPERT_TRAIN_PER_CLASS = 6000  # Fashion-MNIST's 60 000 training images
EXPERT_LR = 0.01  # mtt-distillation buffer.py:117 --lr_teacher; :129 --mom 0; :130 --l2 0
LR_NET = 0.01
BATCH_TRAIN = 256

# name -> (matcher, ipc, outer_loop, inner_loop, lr_img, init)
CONDENSATION = {
    "gradient_ipc1": ("gradient", 1, 1, 1, 0.1, "noise"),
    "distribution_ipc10": ("distribution", 10, 1, 0, 1.0, "real"),
    "cafe_ipc10": ("cafe", 10, 10, 50, 0.1, "real"),
    "cafe_step_ipc10": ("cafe", 10, 1, 50, 0.1, "real"),
}
# The GPU sizes (benches/src/workloads.rs `Size::Gpu`): larger batches, the same loops.
GPU_CONDENSATION = {
    "gradient_ipc1": ("gradient", 10, 1, 50, 0.1, "noise"),
    "distribution_ipc10": ("distribution", 50, 1, 0, 1.0, "real"),
    "cafe_ipc10": ("cafe", 10, 10, 50, 0.1, "real"),
    "cafe_step_ipc10": ("cafe", 50, 1, 50, 0.1, "real"),
}
GPU_CONVNET_BATCH = 2048
GPU_EVAL_IPC = 500
WORKLOADS = ["convnet_fwd_bwd", "convnet_nonorm_fwd_bwd", *CONDENSATION, "eval_epoch", "expert_epoch"]
DEVICE = torch.device("cpu")


class ConvNet(nn.Module):
    """DC's ConvNet (networks.py) with net_norm='instancenorm', net_act='relu',
    net_pooling='avgpooling'; forward returns (logits, embedding, block features)."""

    def __init__(self, channel=1, classes=CLASSES, width=128, depth=3, size=(28, 28), norm=True):
        super().__init__()
        self.blocks = nn.ModuleList()
        h, w = size
        for d in range(depth):
            pad = 3 if channel == 1 and d == 0 and (h, w) == (28, 28) else 1
            self.blocks.append(
                nn.ModuleList(
                    [
                        nn.Conv2d(channel, width, 3, padding=pad),
                        nn.GroupNorm(width, width, affine=True) if norm else nn.Identity(),
                    ]
                )
            )
            channel, h, w = width, (h + 2 * pad - 2) // 2, (w + 2 * pad - 2) // 2
        self.classifier = nn.Linear(channel * h * w, classes)

    def forward(self, x):
        features = []
        for conv, norm in self.blocks:
            y = F.relu(norm(conv(x)))
            features.append(y)
            x = F.avg_pool2d(y, 2)
        embedding = x.flatten(1)
        return self.classifier(embedding), embedding, features


def random_images(per_class, seed):
    """`per_class` random normalised images of every class, class-major, and their labels,
    on DEVICE (drawn on the CPU, so that every device gets the same numbers)."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(per_class * CLASSES, *SHAPE, generator=g) - MEAN) / STD
    y = torch.arange(CLASSES).repeat_interleave(per_class)
    return x.to(DEVICE), y.to(DEVICE)


def class_labels(c, n):
    return torch.full((n,), c, dtype=torch.long, device=DEVICE)


# ---------------------------------------------------------------- matchers


def distance_wb(gwr, gws):
    """DC's `ours` distance of one parameter's gradients (utils.py distance_wb)."""
    shape = gwr.shape
    if len(shape) == 4:
        gwr, gws = gwr.reshape(shape[0], -1), gws.reshape(shape[0], -1)
    elif len(shape) == 3:
        gwr, gws = gwr.reshape(shape[0], shape[1] * shape[2]), gws.reshape(shape[0], shape[1] * shape[2])
    elif len(shape) == 1:
        return 0
    return torch.sum(1 - torch.sum(gwr * gws, dim=-1) / (torch.norm(gwr, dim=-1) * torch.norm(gws, dim=-1) + 1e-6))


def gradient_loss(net, real, syn, ipc):
    params = list(net.parameters())
    loss = 0.0
    for c in range(CLASSES):
        out_real = net(real[c])[0]
        g_real = torch.autograd.grad(F.cross_entropy(out_real, class_labels(c, len(real[c]))), params)
        g_real = [g.detach() for g in g_real]
        syn_c = syn[c * ipc : (c + 1) * ipc]
        out_syn = net(syn_c)[0]
        g_syn = torch.autograd.grad(F.cross_entropy(out_syn, class_labels(c, ipc)), params, create_graph=True)
        loss = loss + sum(distance_wb(r, s) for r, s in zip(g_real, g_syn))
    return loss


def distribution_loss(net, real, syn, ipc):
    loss = 0.0
    for c in range(CLASSES):
        with torch.no_grad():
            emb_real = net(real[c])[1]
        emb_syn = net(syn[c * ipc : (c + 1) * ipc])[1]
        loss = loss + torch.sum((emb_real.mean(0) - emb_syn.mean(0)) ** 2)
    return loss


CAFE_BLOCK_WEIGHTS = (0.1, 0.1, 1.0)
CAFE_EMBEDDING_WEIGHT = 2.0
CAFE_INNER_WEIGHT = 0.01


def cafe_loss(net, real, syn, ipc):
    with torch.no_grad():
        real_out = [net(r) for r in real]
    syn_out = [net(syn[c * ipc : (c + 1) * ipc]) for c in range(CLASSES)]
    mean = lambda t: t.flatten(1).mean(0)  # noqa: E731
    align = 0.0
    for c in range(CLASSES):
        _, emb_r, feats_r = real_out[c]
        _, emb_s, feats_s = syn_out[c]
        for w, fr, fs in zip(CAFE_BLOCK_WEIGHTS, feats_r, feats_s):
            align = align + w * torch.sum((mean(fr) - mean(fs)) ** 2)
        align = align + CAFE_EMBEDDING_WEIGHT * torch.sum((mean(emb_r) - mean(emb_s)) ** 2)
    centres = torch.stack([o[1].mean(0) for o in syn_out])
    real_emb = torch.cat([o[1] for o in real_out])
    labels = torch.cat([class_labels(c, len(o[1])) for c, o in enumerate(real_out)])
    logits = real_emb @ centres.t()
    discriminant = -torch.log_softmax(logits, dim=1).gather(1, labels.unsqueeze(1)).sum()
    return align + CAFE_INNER_WEIGHT * discriminant


MATCHERS = {"gradient": gradient_loss, "distribution": distribution_loss, "cafe": cafe_loss}


# ---------------------------------------------------------------- training


def train_epoch(net, opt, images, labels, batch):
    """One shuffled epoch of mean-CE SGD (cafe_framework::train::train_epoch)."""
    order = torch.randperm(len(images), device=DEVICE)
    total = 0.0
    for idx in order.split(batch):
        loss = F.cross_entropy(net(images[idx])[0], labels[idx])
        value = loss.item()
        if not math.isfinite(value):
            raise RuntimeError(f"training loss became {value}")
        total += value * len(idx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return total / len(images)


# ---------------------------------------------------------------- workloads


class ConvnetFwdBwd:
    def __init__(self, batch, norm=True):
        torch.manual_seed(0)
        self.net = ConvNet(norm=norm).to(DEVICE)
        x, y = random_images(batch // CLASSES + 1, 1)
        self.x, self.y = x[:batch], y[:batch]

    def run(self):
        self.net.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.net(self.x)[0], self.y)
        loss.backward()
        assert all(p.grad is not None for p in self.net.parameters())
        return {"outer_steps": 0, "inner_epochs": 0, "loss": loss.item()}


class Condensation:
    """One iteration of the bi-level loop (cafe_framework::engine::condense, 1 iteration)."""

    def __init__(self, name, table):
        self.matcher, self.ipc, self.outer, self.inner, self.lr_img, self.init = table[name]
        x, y = random_images(BATCH_REAL, 0)
        self.by_class = [x[y == c] for c in range(CLASSES)]

    def run(self):
        torch.manual_seed(0)
        ipc = self.ipc
        if self.init == "noise":
            syn = torch.randn(CLASSES * ipc, *SHAPE).to(DEVICE)
        else:
            syn = torch.cat([m[torch.randperm(len(m))[:ipc]] for m in self.by_class])
        syn = syn.clone().requires_grad_(True)
        labels = torch.arange(CLASSES, device=DEVICE).repeat_interleave(ipc)
        opt_img = torch.optim.SGD([syn], lr=self.lr_img, momentum=0.5)
        net = ConvNet().to(DEVICE)
        if self.matcher == "distribution":
            for p in net.parameters():
                p.requires_grad_(False)
        opt_net = torch.optim.SGD(net.parameters(), lr=LR_NET)
        loss_fn = MATCHERS[self.matcher]
        report = {"outer_steps": 0, "inner_epochs": 0, "loss": None}
        for step in range(self.outer):
            real = [m[torch.randperm(len(m))[:BATCH_REAL]] for m in self.by_class]
            loss = loss_fn(net, real, syn, ipc)
            value = loss.item()
            if not math.isfinite(value):
                raise RuntimeError(f"matching loss is {value}")
            opt_img.zero_grad(set_to_none=True)
            loss.backward()
            opt_img.step()
            if not torch.isfinite(syn.detach().sum()):
                raise RuntimeError("non-finite synthetic pixels")
            report["outer_steps"] += 1
            report["loss"] = value
            if step + 1 == self.outer:
                break
            images = syn.detach().clone()
            for _ in range(self.inner):
                train_epoch(net, opt_net, images, labels, BATCH_TRAIN)
                report["inner_epochs"] += 1
        return report


class EvalEpoch:
    """One epoch of cafe_framework::evaluate::evaluate_set (1 net, 1 epoch, no augmentation)."""

    def __init__(self, ipc):
        self.x, self.y = random_images(ipc, 2)
        self.test_x, self.test_y = random_images(EVAL_TEST_PER_CLASS, 3)

    def run(self):
        torch.manual_seed(0)
        net = ConvNet().to(DEVICE)
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        net.train()
        train_epoch(net, opt, self.x, self.y, 256)
        net.eval()
        with torch.no_grad():
            correct = 0
            for xb, yb in zip(self.test_x.split(500), self.test_y.split(500)):
                correct += (net(xb)[0].argmax(1) == yb).sum().item()
        return {"outer_steps": 0, "inner_epochs": 1, "loss": None, "accuracy": correct / len(self.test_x)}


class ExpertEpoch:
    """One epoch of an expert trajectory (cafe_framework::trajectory::train, MTT's buffer.py):
    a fresh ConvNet, plain SGD, 60 000 images in shuffled batches of 256, no augmentation,
    then a copy of the parameters."""

    def __init__(self):
        self.x, self.y = random_images(EXPERT_TRAIN_PER_CLASS, 4)

    def run(self):
        torch.manual_seed(0)
        net = ConvNet().to(DEVICE)
        opt = torch.optim.SGD(net.parameters(), lr=EXPERT_LR, momentum=0, weight_decay=0)
        net.train()
        loss = train_epoch(net, opt, self.x, self.y, BATCH_TRAIN)
        snapshot = [p.detach().clone() for p in net.parameters()]
        assert len(snapshot) == len(list(net.parameters()))
        return {"outer_steps": 0, "inner_epochs": 1, "loss": loss}


def prepare(name, size):
    gpu = size == "gpu"
    if name in ("convnet_fwd_bwd", "convnet_nonorm_fwd_bwd"):
        return ConvnetFwdBwd(GPU_CONVNET_BATCH if gpu else CONVNET_BATCH, norm=name == "convnet_fwd_bwd")
    if name in CONDENSATION:
        return Condensation(name, GPU_CONDENSATION if gpu else CONDENSATION)
    if name == "eval_epoch":
        return EvalEpoch(GPU_EVAL_IPC if gpu else EVAL_IPC)
    if name == "expert_epoch":
        return ExpertEpoch()
    raise SystemExit(f"unknown workload {name!r}; valid names: {', '.join(WORKLOADS)}")


def shape(name, size):
    """What one run is, in the words of `Workload::shape` (benches/src/workloads.rs)."""
    gpu = size == "gpu"
    if name in CONDENSATION:
        matcher, ipc, _, _, _, _ = (GPU_CONDENSATION if gpu else CONDENSATION)[name]
        one_step = name == "cafe_step_ipc10" or (name == "gradient_ipc1" and gpu)
        return f"{matcher}, ipc {ipc}" + (", 1 outer step" if one_step else "")
    if name in ("convnet_fwd_bwd", "convnet_nonorm_fwd_bwd"):
        return f"{GPU_CONVNET_BATCH if gpu else CONVNET_BATCH} images"
    if name == "eval_epoch":
        return f"{(GPU_EVAL_IPC if gpu else EVAL_IPC) * CLASSES} images"
    return f"{EXPERT_TRAIN_PER_CLASS * CLASSES} images"


def set_precision(precision):
    """cuDNN convolutions in FP32 ('ieee') or TF32; matrix products FP32. PyTorch 2.9 added
    `fp32_precision` settings and deprecated `allow_tf32` (docs notes/cuda.rst, "TensorFloat-32
    (TF32) on Ampere (and later) devices"); older versions have only the latter."""
    tf32 = precision == "tf32"
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        conv.fp32_precision = "tf32" if tf32 else "ieee"
        torch.backends.cuda.matmul.fp32_precision = "ieee"
        return {"cudnn.conv.fp32_precision": conv.fp32_precision,
                "cuda.matmul.fp32_precision": torch.backends.cuda.matmul.fp32_precision}
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    return {"cudnn.allow_tf32": tf32, "cuda.matmul.allow_tf32": False}


def synchronize():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def signature():
    torch.manual_seed(0)
    net = ConvNet()
    logits, emb, feats = net(torch.zeros(2, *SHAPE))
    return {
        "parameters": sum(p.numel() for p in net.parameters()),
        "parameter_shapes": [list(p.shape) for p in net.parameters()],
        "logits": list(logits.shape),
        "embedding": list(emb.shape),
        "block_features": [list(f.shape) for f in feats],
    }


def rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main():
    global DEVICE
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("name", help=f"one or more (comma-separated) of {', '.join(WORKLOADS)}, or 'signature'")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--size", choices=["cpu", "gpu"], default="cpu")
    ap.add_argument("--precision", choices=["fp32", "tf32"], default="fp32")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.name == "signature":
        print(json.dumps(signature()))
        return
    DEVICE = torch.device(args.device)
    precision = None
    settings = None
    if DEVICE.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("torch_workloads.py: --device cuda but torch.cuda.is_available() is False")
        torch.cuda.set_device(DEVICE)
        settings = set_precision(args.precision)
        precision = args.precision
    import_rss = rss_mib()
    for name in args.name.split(","):
        work = prepare(name, args.size)
        for _ in range(args.warmup):
            synchronize()
            work.run()
            synchronize()
        times = []
        report = {}
        if DEVICE.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        for _ in range(max(1, args.repeats)):
            synchronize()
            start = time.perf_counter()
            report = work.run()
            synchronize()
            times.append(time.perf_counter() - start)
        gpu = {}
        if DEVICE.type == "cuda":
            mib = lambda b: round(b / 2**20, 1)  # noqa: E731
            gpu = {
                "gpu_peak_mib": mib(torch.cuda.max_memory_allocated()),
                "gpu_reserved_peak_mib": mib(torch.cuda.max_memory_reserved()),
                "gpu": torch.cuda.get_device_name(),
                "cudnn": torch.backends.cudnn.version(),
                "torch_settings": settings,
            }
        print(
            json.dumps(
                {
                    "workload": name,
                    "device": str(DEVICE),
                    "size": args.size,
                    "shape": shape(name, args.size),
                    "precision": precision,
                    "threads": torch.get_num_threads(),
                    "times_s": times,
                    "median_s": statistics.median(times),
                    **report,
                    "torch": torch.__version__,
                    "import_rss_mib": round(import_rss, 1),
                    **gpu,
                }
            ),
            flush=True,
        )
        del work


if __name__ == "__main__":
    main()
