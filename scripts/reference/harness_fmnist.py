"""Fashion-MNIST glue that decoupled_side_by_side.py copies into the patched scratch copies of
SRe2L (VILA-Lab/SRe2L, SRe2L/*small_dataset/) and RDED (LINs-lab/RDED) as `harness_fmnist.py`.

The patches (decoupled_side_by_side.py, PATCHES) call it where the reference code hard-codes
CIFAR/ImageNet: the normalisation, the 1-channel image loader, the test set, the ConvNet and
the teacher checkpoint. Nothing here changes a method: it only answers "which data, which
network" the way cafe-lab does for Fashion-MNIST.
"""

import os
import random

import numpy as np
import torch
from PIL import Image

# cafe-lab's Fashion-MNIST normalisation (framework/src/data/kind.rs:97,109).
MEAN = [0.2861]
STD = [0.3530]


def seed(s):
    """Seeds python, numpy and torch once (the references seed nothing, or only torch/python)."""
    if s is None or s < 0:
        return
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def gray_loader(path):
    """torchvision's default loader converts every image to RGB; Fashion-MNIST is 1 channel."""
    with open(path, "rb") as f:
        return Image.open(f).convert("L")


def test_set(root, limit, transform):
    """Fashion-MNIST's test set (torchvision, from the decompressed IDX files under `root`), its
    first `limit` images when limit > 0, as cafe-lab's --test-limit."""
    import torchvision

    ds = torchvision.datasets.FashionMNIST(root=root, train=False, download=True, transform=transform)
    if limit and limit > 0:
        ds = torch.utils.data.Subset(ds, range(min(limit, len(ds))))
    return ds


def _rded_convnet_class():
    """RDED's ConvNet (synthesize/models.py), the same class on both sides: the SRe2L copy gets
    the file as convnet_rded.py, the RDED copy imports its own."""
    try:
        from synthesize.models import ConvNet
    except ImportError:
        from convnet_rded import ConvNet
    return ConvNet


def convnet(width, depth=3, num_classes=10):
    """RDED's `conv3` (synthesize/utils.py:183-192) on 1x28x28: net_norm batch, relu, avg
    pooling; its first convolution pads by 3 for 1-channel input (28 -> 32, features W x 4 x 4)."""
    ConvNet = _rded_convnet_class()
    return ConvNet(num_classes=num_classes, net_norm="batch", net_act="relu", net_pooling="avgpooling",
                   net_depth=depth, net_width=width, channel=1, im_size=(28, 28))


def load_teacher(path, width, depth=3):
    """The converted cafe-lab teacher (decoupled_side_by_side.py convert_teacher)."""
    net = convnet(width, depth)
    ckpt = torch.load(path, map_location="cpu")
    sd = ckpt.get("state_dict", ckpt.get("model"))
    net.load_state_dict(sd)
    return net


def write_png(img_u8, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(img_u8).save(path)
