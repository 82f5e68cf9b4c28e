#!/usr/bin/env python3
"""Expected values for tests/torch_gradients.rs: the matching losses and their gradients to the
synthetic pixels (and MTT's step size) as PyTorch computes them, in float32 and float64, at the
real shape (Fashion-MNIST 1x28x28, ConvNet depth 3, instance norm, average pooling, the first
convolution padded by 3 as DC pads 1-channel input: DatasetCondensation `networks.py:95-99`).

Cases (each loss written as its reference code computes it, cited beside):
- `dc_w128`, `dc_w32`: DC's per-class gradient matching, `dis_metric ours`, the second-order
  gradient to the pixels (DatasetCondensation `main.py:160-186`, `utils.py:218-246`);
- `dm_w128`: DM's per-class mean-embedding distance (`main_DM.py:147-170`);
- `cafe_w128`: CAFE's layer-wise alignment and discriminant loss (kaiwang960112/CAFE
  `distill.py:48-56,249-290`, `networks.py:37-52`), without its `loss_real` term (the network's
  cross-entropy on the real batch, which does not reach the pixels and which cafe-lab leaves out);
- `mtt_w32`, `mtt_w128`: one 20-step unrolled trajectory-matching loss and its gradient to the
  pixels and the step size (mtt-distillation `distill.py:324-393`: hard labels, the whole set
  per step, no DSA, one graph through every step).

Inputs both sides reproduce without committing them:
- images: Fashion-MNIST training images picked by index (the first ones of each class in file
  order), normalised `(x / 255 - 0.2861) / 0.3530` in float32 (torchvision's ToTensor +
  Normalize; cafe-lab `framework/src/data/normalise.rs`);
- parameters: PyTorch's default initialisation ranges (weights and biases U(+-1/sqrt(fan_in)),
  norm weights 1 + U(+-0.1), norm biases U(+-0.1)), drawn from a counter-based SplitMix64 so
  that `tests/torch_gradients.rs` draws the same numbers: value = lo + (hi - lo) * u computed in
  float64, u = (splitmix64(stream << 32 | i) >> 11) * 2^-53, then rounded to the dtype.

The output (scripts/reference/results/torch_gradients.json, committed) holds, per case and
dtype: the loss, the gradient's norm, each image's gradient norm, 256 sampled coordinates and
3 projections on pseudo-random directions (and for MTT the step size's gradient).

    /path/to/python-with-torch scripts/reference/torch_gradients.py \\
        --data-dir /usr/share/datasets/fashion-mnist --out scripts/reference/results/torch_gradients.json
"""

import argparse
import gzip
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

MASK = np.uint64(0xFFFFFFFFFFFFFFFF)
MEAN, STD = 0.2861, 0.3530  # DatasetCondensation utils.py:28-29
CLASSES = 10
SAMPLES = 256
PROJECTIONS = 3


def splitmix64(x):
    """SplitMix64's finaliser of x + golden gamma, on a uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def uniform(stream, n, lo, hi):
    """n float64 values lo + (hi - lo) * u, u in [0, 1) from stream `stream` (as the Rust test)."""
    i = np.arange(n, dtype=np.uint64) + (np.uint64(stream) << np.uint64(32))
    u = (splitmix64(i) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    return lo + (hi - lo) * u


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as fh:
        data = fh.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * k:8 + 4 * k], "big") for k in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_fashion(data_dir):
    def find(name):
        for p in (os.path.join(data_dir, name + ".gz"), os.path.join(data_dir, name)):
            if os.path.exists(p):
                return p
        sys.exit(f"error: {data_dir} lacks {name}[.gz] (Debian: apt-get install dataset-fashion-mnist)")
    images = read_idx(find("train-images-idx3-ubyte"))
    labels = read_idx(find("train-labels-idx1-ubyte"))
    return images, labels


def pick(images, labels, per_class, skip=0):
    """Images `skip..skip+per_class` of each class in file order, class-major, normalised in f32."""
    rows = []
    for c in range(CLASSES):
        idx = np.nonzero(labels == c)[0][skip:skip + per_class]
        rows.append(idx)
    idx = np.concatenate(rows)
    x = torch.from_numpy(images[idx].astype(np.float32)).unsqueeze(1)
    x = (x / 255.0 - MEAN) / STD  # ToTensor (x / 255) then Normalize, both in float32
    return x, idx


def param_shapes(width):
    """ConvNet (depth 3) parameter shapes in `parameters()` order for 1x28x28 input."""
    shapes = []
    cin = 1
    for _ in range(3):
        shapes += [(width, cin, 3, 3), (width,), (width,), (width,)]
        cin = width
    shapes += [(CLASSES, width * 4 * 4), (CLASSES,)]  # 28 -> 32 (padding 3) -> 16 -> 8 -> 4
    return shapes


def make_params(width, stream):
    """The parameters as float64 arrays; stream `stream + k` draws parameter k."""
    params = []
    for k, shape in enumerate(param_shapes(width)):
        n = int(np.prod(shape))
        kind = k % 4 if k < 12 else (0 if k == 12 else 1)
        if k < 12 and kind == 2:  # norm weight
            v = 1.0 + uniform(stream + k, n, -0.1, 0.1)
        elif k < 12 and kind == 3:  # norm bias
            v = uniform(stream + k, n, -0.1, 0.1)
        else:  # conv / linear weight and bias: U(+-1/sqrt(fan_in))
            fan_in = (1 if k == 0 else width) * 9 if k < 12 else width * 16
            b = 1.0 / np.sqrt(fan_in)
            v = uniform(stream + k, n, -b, b)
        params.append(v.reshape(shape))
    return params


def features(params, x):
    """ConvNet blocks (DC networks.py:92-110): conv, GroupNorm(C, C), ReLU, AvgPool(2); returns
    each block's map after the activation (before pooling) and the last pooled map."""
    blocks = []
    out = x
    for d in range(3):
        w, b, gw, gb = params[4 * d:4 * d + 4]
        out = F.conv2d(out, w, b, padding=3 if d == 0 else 1)
        out = F.group_norm(out, w.shape[0], gw, gb, eps=1e-5)
        out = F.relu(out)
        blocks.append(out)
        out = F.avg_pool2d(out, 2, 2)
    return blocks, out


def logits(params, x):
    _, out = features(params, x)
    return F.linear(out.reshape(out.shape[0], -1), params[12], params[13])


def distance_wb(gwr, gws):
    """DatasetCondensation utils.py:218-235."""
    shape = gwr.shape
    if len(shape) == 4:
        gwr = gwr.reshape(shape[0], shape[1] * shape[2] * shape[3])
        gws = gws.reshape(shape[0], shape[1] * shape[2] * shape[3])
    elif len(shape) == 1:
        return torch.tensor(0, dtype=gwr.dtype)
    return torch.sum(1 - torch.sum(gwr * gws, dim=-1) / (torch.norm(gwr, dim=-1) * torch.norm(gws, dim=-1) + 0.000001))


def dc_loss(params, real, syn, ipc, per_class):
    """main.py:166-186: per class, CE gradients of the real batch (values) and of the synthetic
    images (with graph), matched with `ours` (utils.py:239-246)."""
    loss = torch.zeros((), dtype=syn.dtype)
    for c in range(CLASSES):
        img_real = real[c * per_class:(c + 1) * per_class]
        img_syn = syn[c * ipc:(c + 1) * ipc]
        lab_real = torch.full((per_class,), c, dtype=torch.long)
        lab_syn = torch.full((ipc,), c, dtype=torch.long)
        gw_real = torch.autograd.grad(F.cross_entropy(logits(params, img_real), lab_real), params)
        gw_real = [g.detach().clone() for g in gw_real]
        gw_syn = torch.autograd.grad(F.cross_entropy(logits(params, img_syn), lab_syn), params, create_graph=True)
        for gr, gs in zip(gw_real, gw_syn):
            loss = loss + distance_wb(gr, gs)
    return loss


def dm_loss(params, real, syn, ipc, per_class):
    """main_DM.py:160-168: per class, || mean embed(real) - mean embed(syn) ||^2, real detached."""
    loss = torch.zeros((), dtype=syn.dtype)
    for c in range(CLASSES):
        _, r = features(params, real[c * per_class:(c + 1) * per_class])
        _, s = features(params, syn[c * ipc:(c + 1) * ipc])
        r = r.reshape(r.shape[0], -1).detach()
        s = s.reshape(s.shape[0], -1)
        loss = loss + torch.sum((torch.mean(r, dim=0) - torch.mean(s, dim=0)) ** 2)
    return loss


def criterion_middle(real_feature, syn_feature):
    """CAFE distill.py:48-56 (`.view` as `.reshape`)."""
    shape_real = real_feature.shape
    real_feature = torch.mean(real_feature.reshape(10, shape_real[0] // 10, *shape_real[1:]), dim=1)
    shape_syn = syn_feature.shape
    syn_feature = torch.mean(syn_feature.reshape(10, shape_syn[0] // 10, *shape_syn[1:]), dim=1)
    return F.mse_loss(real_feature, syn_feature, reduction="sum")


def cafe_features(params, x):
    """CAFE networks.py:37-52: [f5, f4, f3, f2, f1] = embedding, last pooled map, blocks 3, 2, 1."""
    blocks, f4 = features(params, x)
    f5 = f4.reshape(f4.shape[0], -1)
    return F.linear(f5, params[12], params[13]), [f5, f4, blocks[2], blocks[1], blocks[0]]


def cafe_loss(params, real, syn, ipc, per_class, inner_weight=0.01):
    """CAFE distill.py:270-290 with the default weights (:81-85: fourth 0.1, third 0.1, second
    1.0, first 1.0, inner 0.01), all classes in one batch, minus `loss_real`."""
    lab_real = torch.arange(CLASSES).repeat_interleave(per_class)
    _, rf = cafe_features(params, real)
    _, sf = cafe_features(params, syn)
    rf = [f.detach() for f in rf]  # the real side carries no gradient to the pixels
    loss = (0.1 * criterion_middle(rf[-1], sf[-1]) + 0.1 * criterion_middle(rf[-2], sf[-2])
            + 1.0 * criterion_middle(rf[-3], sf[-3]) + 1.0 * criterion_middle(rf[-4], sf[-4]))
    last_real = torch.mean(rf[0].reshape(10, rf[0].shape[0] // CLASSES, rf[0].shape[1]), dim=1)
    last_syn = torch.mean(sf[0].reshape(10, sf[0].shape[0] // CLASSES, sf[0].shape[1]), dim=1)
    output = torch.mm(rf[0], last_syn.t())
    last_real = torch.mean(last_real.unsqueeze(0).reshape(10, last_real.shape[0] // CLASSES, last_real.shape[1]), dim=1)
    return loss + criterion_middle(last_syn, last_real) + inner_weight * F.cross_entropy(output, lab_real, reduction="sum")


def mtt_loss(start, target, syn, lr, steps):
    """distill.py:342-386: `steps` SGD steps of size lr on the whole set (hard labels), one
    graph; loss = ||w_T - w*||^2 / ||w_0 - w*||^2 over the flattened parameters."""
    labels = torch.arange(CLASSES)
    w = [p.clone().requires_grad_(True) for p in start]
    current = w
    for _ in range(steps):
        ce = F.cross_entropy(logits(current, syn), labels)
        grads = torch.autograd.grad(ce, current, create_graph=True)
        current = [p - lr * g for p, g in zip(current, grads)]
    num = sum(torch.sum((a - b) ** 2) for a, b in zip(current, target))
    den = sum(torch.sum((a - b) ** 2) for a, b in zip(start, target))
    return num / den


def summary(loss, grad, extra=None):
    g = grad.detach().to(torch.float64).reshape(-1)
    n = g.numel()
    idx = (splitmix64(np.arange(SAMPLES, dtype=np.uint64) + (np.uint64(900) << np.uint64(32))) % np.uint64(n)).astype(np.int64)
    out = {
        "loss": float(loss.detach()),
        "grad_norm": float(g.norm()),
        "image_norms": [float(x) for x in grad.detach().to(torch.float64).reshape(grad.shape[0], -1).norm(dim=1)],
        "sample_index": [int(i) for i in idx],
        "samples": [float(g[i]) for i in idx],
        "projections": [float(g @ torch.tensor(uniform(901 + k, n, -1.0, 1.0))) for k in range(PROJECTIONS)],
    }
    out.update(extra or {})
    return out


def run_case(name, spec, images, labels):
    width, kind = spec["width"], spec["kind"]
    per_class, ipc = spec.get("per_class", 0), 1
    real, real_idx = pick(images, labels, per_class) if per_class else (None, [])
    syn0, syn_idx = pick(images, labels, ipc, skip=per_class)
    result = {"spec": spec, "real_index": [int(i) for i in real_idx], "syn_index": [int(i) for i in syn_idx]}
    start = make_params(width, 100)
    # MTT's target: the start moved by U(+-0.01) per coordinate, added in float64.
    target = [p + uniform(200 + k, p.size, -0.01, 0.01).reshape(p.shape) for k, p in enumerate(start)]
    for dtype, tag in ((torch.float32, "f32"), (torch.float64, "f64")):
        params = [torch.tensor(p, dtype=dtype) for p in start]
        syn = syn0.to(dtype).clone().requires_grad_(True)
        if kind == "mtt":
            target_t = [torch.tensor(p, dtype=dtype) for p in target]
            lr = torch.tensor(0.01, dtype=dtype, requires_grad=True)
            loss = mtt_loss(params, target_t, syn, lr, spec["steps"])
            g_syn, g_lr = torch.autograd.grad(loss, [syn, lr])
            result[tag] = summary(loss, g_syn, {"lr_grad": float(g_lr)})
        else:
            params = [p.requires_grad_(True) for p in params]
            fn = {"dc": dc_loss, "dm": dm_loss, "cafe": cafe_loss}[kind]
            loss = fn(params, real.to(dtype), syn, ipc, per_class)
            (g_syn,) = torch.autograd.grad(loss, [syn])
            result[tag] = summary(loss, g_syn)
        print(f"{name} {tag}: loss {result[tag]['loss']:.9g} |grad| {result[tag]['grad_norm']:.9g}", flush=True)
    return result


CASES = {
    "dc_w128": {"kind": "dc", "width": 128, "per_class": 16},
    "dc_w32": {"kind": "dc", "width": 32, "per_class": 16},
    "dm_w128": {"kind": "dm", "width": 128, "per_class": 32},
    "cafe_w128": {"kind": "cafe", "width": 128, "per_class": 16},
    "mtt_w32": {"kind": "mtt", "width": 32, "steps": 20},
    "mtt_w128": {"kind": "mtt", "width": 128, "steps": 20},
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--out", default="scripts/reference/results/torch_gradients.json")
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of " + ",".join(CASES))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    images, labels = load_fashion(args.data_dir)
    out = {
        "about": "expected values of tests/torch_gradients.rs, written by scripts/reference/torch_gradients.py",
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cases": {},
    }
    for name in args.cases.split(","):
        out["cases"][name] = run_case(name, CASES[name], images, labels)
    with open(args.out, "w") as fh:
        json.dump(out, fh, indent=1)
        fh.write("\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
