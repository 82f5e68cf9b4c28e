#!/usr/bin/env python3
"""The reference's random-subset baseline: ipc random real images per class, evaluated with the
reference's own code (get_dataset, get_network, evaluate_synset, its augmentation settings).

Run it with the working directory set to a patched scratch copy of a reference repository
(``patch_reference.py``), so that ``import utils`` is the reference's utils.py. It mirrors what
the reference's main.py / main_DM.py / distill.py do at iteration 0 with ``--init real``:
sample with ``np.random.permutation(indices_class[c])[:ipc]``, then train ``--num_eval``
fresh networks on those images with ``evaluate_synset`` (``--epoch_eval_train`` + 1 epochs,
lr 0.01 dropped 10x after epoch E//2+1, batch 256) and test them on the whole test set.

Prints one JSON line at the end: {"accuracies": [...], "mean": m, "std": s} (numpy's
population std, as the reference prints).

    cd SCRATCH/dc && python ref_random_baseline.py --dataset FashionMNIST --data_path DATA \\
        --ipc 1 --num_eval 3 --epoch_eval_train 300 --aug none
"""

import argparse
import json
import sys

import numpy as np
import torch

sys.path.insert(0, ".")
from utils import ParamDiffAug, evaluate_synset, get_daparam, get_dataset, get_network  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="FashionMNIST")
    ap.add_argument("--data_path", required=True)
    ap.add_argument("--model", default="ConvNet")
    ap.add_argument("--ipc", type=int, required=True)
    ap.add_argument("--num_eval", type=int, required=True)
    ap.add_argument("--epoch_eval_train", type=int, required=True)
    ap.add_argument("--aug", choices=["none", "dc", "dsa"], required=True,
                    help="evaluation augmentation: none; dc (get_daparam's strategy for the dataset "
                         "and model, as main.py's DC path); dsa (DiffAugment with --dsa_strategy)")
    ap.add_argument("--dsa_strategy", default="color_crop_cutout_flip_scale_rotate")
    ap.add_argument("--seed", type=int, default=-1)
    args = ap.parse_args()
    if args.seed >= 0:
        np.random.seed(args.seed)
        torch.manual_seed(args.seed)

    # The fields evaluate_synset / epoch / DiffAugment read, as the reference's scripts set them.
    args.device = "cpu"
    args.lr_net = 0.01
    args.batch_train = 256
    args.dsa_param = ParamDiffAug()
    args.dsa = args.aug == "dsa"
    if args.aug == "dc":
        args.dc_aug_param = get_daparam(args.dataset, args.model, args.model, args.ipc)
    else:
        args.dc_aug_param = None

    channel, im_size, num_classes, _, _, _, dst_train, _, testloader = get_dataset(args.dataset, args.data_path)
    labels_all = [dst_train[i][1] for i in range(len(dst_train))]
    indices_class = [[] for _ in range(num_classes)]
    for i, lab in enumerate(labels_all):
        indices_class[lab].append(i)
    images, labels = [], []
    for c in range(num_classes):
        for i in np.random.permutation(indices_class[c])[: args.ipc]:
            images.append(torch.unsqueeze(dst_train[int(i)][0], dim=0))
            labels.append(c)
    image_syn = torch.cat(images, dim=0)
    label_syn = torch.tensor(labels, dtype=torch.long)

    accs = []
    for it_eval in range(args.num_eval):
        net = get_network(args.model, channel, num_classes, im_size)
        _, _, acc_test = evaluate_synset(it_eval, net, image_syn.clone(), label_syn.clone(), testloader, args)
        accs.append(float(acc_test))
    print(json.dumps({"accuracies": accs, "mean": float(np.mean(accs)), "std": float(np.std(accs))}))


if __name__ == "__main__":
    main()
