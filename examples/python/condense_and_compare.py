# %% [markdown]
# cafe-lab from Python, notebook style (each `# %%` is a cell in VS Code or Jupytext):
# condense DM on the embedded `shapes` set, evaluate it, then load a set saved the way
# mtt-distillation saves one (`images_best.pt` + `labels_best.pt`, written here by PyTorch)
# and compare both under one protocol, beside the random baseline and DD-Ranking's metrics.
# Run: `pip install ./python torch` from the repository, then `python examples/python/condense_and_compare.py`.

# %%
import tempfile
from pathlib import Path

import torch

import cafe_lab

# One protocol for everything below: DM's (DSA augmentation), shortened (the whole script: 12 min of
# CPU time here, mostly the metrics' whole-dataset and robustness trainings).
PROTOCOL = dict(dataset="shapes", protocol="dm", eval_nets=2, eval_epochs=100, eval_metrics=True,
                eval_whole_nets=1, eval_whole_epochs=20)

# %% Condense: 10 images per class, 100 iterations of distribution matching.
dm = cafe_lab.condense(dataset="shapes", matcher="distribution", ipc=10, iterations=100, batch_real=32,
                       eval_nets=2, eval_epochs=100, out="runs/python-example-dm", force=True)
print(dm)
print("as condensed:", dm.results.accuracy)
images = torch.from_numpy(dm.images)        # no copy: the same memory as dm.images

# %% Another tool's set: mtt-distillation writes the images and labels with torch.save
# (distill.py:242-243). Here a stand-in made from the DM set; point `folder` at a real run's
# `logged_files/<dataset>/<run>/` instead (a CIFAR-10 set needs dataset="cifar10").
folder = Path(tempfile.mkdtemp())
torch.save(images + 0.5 * torch.randn_like(images), folder / "images_best.pt")
torch.save(torch.from_numpy(dm.labels), folder / "labels_best.pt")

# %% Both under one protocol. MTT evaluates at the step size it learned, which it does not
# save: pass it as lr=... when you know it.
ours = cafe_lab.evaluate(dm.images, dm.labels, **PROTOCOL)
theirs = cafe_lab.evaluate(folder / "images_best.pt", **PROTOCOL)
for name, r in [("DM (cafe-lab)", ours), ("images_best.pt", theirs)]:
    acc = r.accuracy["convnet"]
    (m,) = r.metrics
    print(f"{name:16s} synthetic {100 * acc['synthetic']:.2f} %  random {100 * acc['random']:.2f} %  "
          f"LRS {m['label_robust_score']['mean']:.3f}  ARS {m['augmentation_robust_score']['mean']:.3f}")
print("assumed about the .pt file:", *theirs.notes, sep="\n  ")
