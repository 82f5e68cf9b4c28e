#!/usr/bin/env python3
"""Converts mtt-distillation's expert buffers (`replay_buffer_N.pt`) into a cafe-lab expert store.

A reference buffer file is what `buffer.py` saves with `torch.save(trajectories, ...)`
(mtt-distillation `buffer.py:99-107`): a list of experts, each a list of parameter lists, one
per epoch (epoch 0 = the initialisation, `buffer.py:78`; then one after every epoch, `:92`),
each in `teacher_net.parameters()` order. For the ConvNet that order is conv weight, conv bias,
norm weight, norm bias per block, then the classifier's weight and bias: the order of cafe-lab's
`Network::parameters()` for `convnet` (plugins/src/architectures/convnet.rs), which is what its
store keeps.

cafe-lab's store is one safetensors file per expert, `expert_NNNN.safetensors`, with tensors
`epoch_EEEE.param_PPP` (f32) and string metadata (framework/src/trajectory/store.rs). The
metadata that a run checks (dataset, image shape, classes, architecture and its resolved
settings) is copied from `--template`, an expert file cafe-lab wrote for the same dataset and
architecture; the parameter shapes of every converted epoch must equal the template's. The
expert's own fields are rewritten: its index, epochs, `settings` (where it came from),
`test_accuracy` (read from buffer.py's log when `--log` is given: its `Test Acc` lines,
`buffer.py:90`), `train_loss` (buffer.py prints none: empty).

    python3 mtt_buffer_to_store.py --template T.safetensors --out STORE replay_buffer_0.pt [...]

Needs torch (to read the .pt files); writes safetensors by hand (no safetensors package).
"""

import argparse
import json
import os
import re
import struct
import sys

import torch


def read_header(path):
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        return json.loads(fh.read(n))


def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, float32 contiguous torch tensor); metadata: dict of str -> str."""
    header = {"__metadata__": metadata}
    offset = 0
    blobs = []
    for name, t in sorted(tensors, key=lambda nt: nt[0]):
        data = t.detach().to(torch.float32).contiguous().cpu().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".part"
    with open(tmp, "wb") as fh:
        fh.write(struct.pack("<Q", len(text)))
        fh.write(text)
        for b in blobs:
            fh.write(b)
    os.replace(tmp, path)


def test_accuracies(log_path):
    """{expert: [test acc per epoch]} from buffer.py's `Itr: I\\tEpoch: E\\t... Test Acc: A` lines."""
    accs = {}
    if not log_path:
        return accs
    with open(log_path) as fh:
        for m in re.finditer(r"Itr: (\d+)\tEpoch: (\d+)\tTrain Acc: \S+\tTest Acc: (\S+)", fh.read()):
            accs.setdefault(int(m.group(1)), []).append(float(m.group(3)))
    return accs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("buffers", nargs="+", help="replay_buffer_N.pt files, in order")
    ap.add_argument("--template", required=True, help="a cafe-lab expert file of the same dataset and architecture")
    ap.add_argument("--out", required=True, help="the store folder to write")
    ap.add_argument("--log", help="buffer.py's output (for the test accuracies)")
    ap.add_argument("--note", default="", help="a line kept in each file's settings")
    args = ap.parse_args()

    template = read_header(args.template).get("__metadata__") or {}
    if template.get("format") != "cafe-lab expert trajectory 1":
        print(f"error: {args.template} is not a cafe-lab expert file (format {template.get('format')!r})",
              file=sys.stderr)
        return 2
    shapes = json.loads(template["parameter_shapes"])
    accs = test_accuracies(args.log)
    os.makedirs(args.out, exist_ok=True)
    index = 0
    for path in args.buffers:
        experts = torch.load(path, map_location="cpu")
        for local, trajectory in enumerate(experts):
            tensors = []
            for e, params in enumerate(trajectory):
                got = [list(p.shape) for p in params]
                if got != shapes:
                    print(f"error: {path} expert {local} epoch {e} has parameter shapes {got}; the template "
                          f"({args.template}) has {shapes}: train the template with the same architecture",
                          file=sys.stderr)
                    return 2
                tensors += [(f"epoch_{e:04d}.param_{p:03d}", t) for p, t in enumerate(params)]
            epochs = len(trajectory) - 1
            if epochs > 1 and all(torch.equal(a, b) for a, b in zip(trajectory[0], trajectory[-1])):
                print(f"error: {path} expert {local}: the first and last epochs are identical (buffer.py's "
                      "CPU aliasing of p.detach().cpu(): train with the patched copy)", file=sys.stderr)
                return 2
            meta = dict(template)
            meta["expert"] = json.dumps(index)
            meta["epochs"] = json.dumps(epochs)
            meta["seed"] = json.dumps(0)
            meta["train_loss"] = json.dumps([])
            meta["test_accuracy"] = json.dumps(accs.get(index, [])[:epochs])
            meta["settings"] = json.dumps({"converted_from": os.path.abspath(path), "buffer_expert": local,
                                           "note": args.note})
            out = os.path.join(args.out, f"expert_{index:04d}.safetensors")
            write_safetensors(out, tensors, meta)
            print(f"{path}[{local}] -> {out} ({epochs} epochs)")
            index += 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
