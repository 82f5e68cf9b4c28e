#!/usr/bin/env python3
"""Copies the public reference code to a scratch folder and patches the copy.

The reference repositories (VICO-UoE/DatasetCondensation for DC, DSA and DM;
kaiwang960112/CAFE for CAFE) were written for torch 1.2 / torchvision 0.4 / scipy 1.1.
This module makes a *scratch copy* of a checkout (the checkout itself is never edited) and
applies the small patches listed in ``PATCHES`` below, each with the reason it is needed.
Every patch is an exact text replacement that must match a given number of times: when the
reference code changes, the patcher stops with a clear message instead of silently running
something else.

Two kinds of patches:

- ``compat``: the reference does not run on current PyTorch / SciPy without them, or runs
  with a behaviour that differs from the pinned torch 1.2 it was written for;
- ``harness``: new, opt-in command-line flags (``--harness_*``) that let the side-by-side
  harness run the reference at reduced settings (fewer evaluation epochs, evaluation only at
  the last iteration, a seed, a smaller CAFE probe). With their defaults the reference
  behaves exactly as upstream.

Usage as a script (prints the list of patches, or makes a patched copy):

    python3 patch_reference.py --list
    python3 patch_reference.py --dc-repo PATH --cafe-repo PATH --out SCRATCH_DIR
"""

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys

# Lines the harness flags add to the reference's argparse (after its --dis_metric flag).
_HARNESS_FLAGS = (
    "    parser.add_argument('--harness_epoch_eval', type=int, default=0, help='cafe-lab harness: "
    "if > 0, overrides the evaluation epochs that the evaluation block sets')\n"
    "    parser.add_argument('--harness_final_eval_only', type=int, default=0, help='cafe-lab harness: "
    "1 evaluates only at the last iteration, 2 at iteration 0 and the last')\n"
    "    parser.add_argument('--harness_seed', type=int, default=-1, help='cafe-lab harness: "
    "seed numpy and torch at start (networks are still seeded from the clock by get_network)')\n"
)
_CAFE_PROBE_FLAG = (
    "    parser.add_argument('--harness_probe', type=int, default=128, help='cafe-lab harness: "
    "real images per class in the accuracy watchers probe (reference: 128)')\n"
    "    parser.add_argument('--harness_max_steps', type=int, default=0, help='cafe-lab harness: "
    "if > 0, caps the outer steps of an iteration and the epochs of an inner loop (reference: no cap)')\n"
)
_UPDATE_NETWORK = "                ''' update network '''\n"
_TEST_EPOCH = ("                    epoch('test', trainloader, net, optimizer_net, criterion, args, "
               "aug=True if args.dsa else False)\n")
_SEED = (
    "    if args.harness_seed >= 0:\n"
    "        np.random.seed(args.harness_seed)\n"
    "        torch.manual_seed(args.harness_seed)\n"
)
_FINAL_ONLY = (
    "    if args.harness_final_eval_only:\n"
    "        eval_it_pool = [args.Iteration] if args.harness_final_eval_only == 1 else [0, args.Iteration]\n"
    "        print('harness: eval_it_pool', eval_it_pool)\n"
)
_EPOCH_OVERRIDE = (
    "                    if args.harness_epoch_eval > 0:\n"
    "                        args.epoch_eval_train = args.harness_epoch_eval\n"
)
_DIS_METRIC = "    parser.add_argument('--dis_metric', type=str, default='ours', help='distance metric')\n"
_PARSE = "    args = parser.parse_args()\n"
_GET_DATASET = "    channel, im_size, num_classes, class_names, mean, std, dst_train, dst_test, testloader = get_dataset("
_ACCS = "                    accs = []\n                    for it_eval in range(args.num_eval):\n"


@dataclasses.dataclass(frozen=True)
class Patch:
    repo: str  # "dc", "cafe" or "mtt"
    path: str  # file inside the repository
    old: str
    new: str
    count: int  # exact number of occurrences of `old`
    kind: str  # "compat" or "harness"
    why: str


def _siamese(repo, var, count=1):
    return Patch(
        repo, "utils.py", f"{var}[:] = {var}[0]\n", f"{var}[:] = {var}[0].clone()\n", count, "compat",
        f"DSA siamese mode copies the first image's parameters onto the whole batch with "
        f"`{var}[:] = {var}[0]`, an in-place copy from an overlapping view of the same tensor. "
        "Some torch versions refuse it ('unsupported operation: some elements of the input tensor "
        "and the written-to tensor refer to a single memory location. Please clone() the tensor', "
        "VICO-UoE/DatasetCondensation issue #20); torch 2.15 accepts it. Cloning the source gives "
        "the same values on every version.",
    )


def _utils_patches(repo):
    """The patches shared by the two repositories' utils.py (CAFE's is a fork of DC's)."""
    patches = [
        Patch(
            repo, "utils.py",
            "from scipy.ndimage.interpolation import rotate as scipyrotate\n",
            "from scipy.ndimage import rotate as scipyrotate\n", 1, "compat",
            "scipy.ndimage.interpolation was deprecated in SciPy 1.8 and removed later; `rotate` "
            "lives in scipy.ndimage (same function). Used by DC's evaluation augmentation "
            "(crop_scale_rotate, MNIST only).",
        ),
        Patch(
            repo, "utils.py",
            "    grid = F.affine_grid(theta, x.shape).to(x.device)\n    x = F.grid_sample(x, grid)\n",
            "    grid = F.affine_grid(theta, x.shape, align_corners=True).to(x.device)\n"
            "    x = F.grid_sample(x, grid, align_corners=True)\n", 2, "compat",
            "DSA's rand_scale and rand_rotate call affine_grid / grid_sample without align_corners. "
            "torch 1.2 (the pinned version) only had what later versions call align_corners=True; "
            "since torch 1.3 the default is False (a half-pixel shift of every sampled image). "
            "Passing True restores the behaviour the reference was written and tuned with, which is "
            "also what cafe-lab implements (plugins/src/augmenters/dsa/affine.rs).",
        ),
    ]
    patches += [_siamese(repo, v, 2 if v == "theta" else 1) for v in
                ("theta", "randf", "randb", "rands", "randc", "translation_x", "translation_y",
                 "offset_x", "offset_y")]
    return patches


def _view_patches(repo, n_out, n_x):
    why = ("`.view(n, -1)` on a feature map that is not contiguous: since torch 1.5 a convolution "
           "of a 1-channel batch that DSA's rand_crop permuted (channels-last strides, which count "
           "as contiguous when C = 1) returns a channels-last map, and `.view` raises 'view size "
           "is not compatible with input tensor's size and stride'. `.reshape` gives the same "
           "values (a copy where needed); torch 1.2 had no channels-last propagation.")
    return [
        Patch(repo, "networks.py", ".view(out.size(0), -1)", ".reshape(out.size(0), -1)", n_out, "compat", why),
        Patch(repo, "networks.py", ".view(x.size(0), -1)", ".reshape(x.size(0), -1)", n_x, "compat",
              "(the same, for the other networks' flattening)"),
    ]


def _harness_patches(repo, path, epoch_override):
    patches = [
        Patch(repo, path, _DIS_METRIC, _DIS_METRIC + _HARNESS_FLAGS, 1, "harness",
              "adds the opt-in --harness_* flags (defaults: upstream behaviour)."),
        Patch(repo, path, _PARSE, _PARSE + _SEED, 1, "harness",
              "--harness_seed N seeds numpy (real-image sampling) and torch (the noise "
              "initialisation) once at start; the reference seeds nothing, and get_network "
              "reseeds torch from the clock for every network, which stays as it is."),
        Patch(repo, path, _GET_DATASET, _FINAL_ONLY + _GET_DATASET, 1, "harness",
              "--harness_final_eval_only 1 evaluates only at the last iteration. Upstream "
              "evaluates at 0, 500, 1000, ... (DC/DSA), 0, 2000, ... (DM), 0, 100, ... (CAFE): "
              "at reduced iteration counts that is only iteration 0 (np.arange(0, It+1, 500) "
              "holds no later point), and the final set would never be evaluated. "
              "--harness_final_eval_only 2 evaluates at 0 and at the last iteration: with --init "
              "real, iteration 0 evaluates a random real subset, i.e. the random baseline."),
    ]
    if epoch_override:
        patches.append(Patch(
            repo, path, _ACCS, _EPOCH_OVERRIDE + _ACCS, 1, "harness",
            "--harness_epoch_eval E overrides the evaluation epochs, which the evaluation block "
            "hard-codes (DC/DSA: 300 without augmentation, 1000 with; CAFE: 600 / 1000) over "
            "the --epoch_eval_train flag. Like upstream, evaluate_synset then trains E+1 epochs."))
    return patches


PATCHES = (
    _utils_patches("dc")
    + _view_patches("dc", 6, 8)
    + _harness_patches("dc", "main.py", epoch_override=True)
    # main_DM.py reads its own --epoch_eval_train flag in evaluation: no override needed.
    + _harness_patches("dc", "main_DM.py", epoch_override=False)
    + _utils_patches("cafe")
    + _view_patches("cafe", 3, 4)
    + _harness_patches("cafe", "distill.py", epoch_override=True)
    + [
        Patch("cafe", "distill.py", _DIS_METRIC, _DIS_METRIC + _CAFE_PROBE_FLAG, 1, "harness",
              "--harness_probe N sets the real images per class of the accuracy watchers' probe "
              "(upstream: 128, hard-coded twice). cafe-lab's equivalent is "
              "scheduler.probe_per_class; the harness passes the same N to both."),
        Patch("cafe", "distill.py", "get_images(c, 128)", "get_images(c, args.harness_probe)", 2, "harness",
              "(the two probe sites of --harness_probe)"),
        Patch("cafe", "distill.py", "            acc_watcher = list()\n            pop_cnt = 0\n",
              "            harness_outer, harness_inner = 0, 0\n"
              "            acc_watcher = list()\n            pop_cnt = 0\n", 1, "harness",
              "counts the dynamic loops' outer steps and inner epochs of each iteration and prints "
              "them ('harness: iteration I outer O inner N'), to compare with cafe-lab's "
              "results.json condensation report. No effect on the computation."),
        Patch("cafe", "distill.py", "                loss_avg += loss.item()\n",
              "                loss_avg += loss.item()\n                harness_outer += 1\n", 1, "harness",
              "(the outer-step counter)"),
        Patch("cafe", "distill.py", "                    acc_syn_inner_watcher.append(inner_acc)\n",
              "                    acc_syn_inner_watcher.append(inner_acc)\n                    harness_inner += 1\n",
              1, "harness", "(the inner-epoch counter)"),
        Patch("cafe", "distill.py", "            loss_avg /= (num_classes * args.outer_loop)\n",
              "            print('harness: iteration %d outer %d inner %d' % (it, harness_outer, harness_inner), "
              "flush=True)\n            loss_avg /= (num_classes * args.outer_loop)\n", 1, "harness",
              "(prints the counters)"),
        Patch("cafe", "distill.py", _UPDATE_NETWORK,
              "                if args.harness_max_steps > 0 and harness_outer >= args.harness_max_steps:\n"
              "                    break\n" + _UPDATE_NETWORK, 1, "harness",
              "--harness_max_steps N: the outer loop also ends after N outer steps (checked after the "
              "lambda_1 rule, as cafe-lab's scheduler.max_outer_steps). Upstream has no cap: its "
              "watchers need at least 10 steps (and 10 epochs) per loop and a loop may run long, "
              "which does not fit a CPU budget of minutes."),
        Patch("cafe", "distill.py", _TEST_EPOCH,
              "                    if args.harness_max_steps > 0 and pop_inner_cnt >= args.harness_max_steps:\n"
              "                        break\n" + _TEST_EPOCH, 1, "harness",
              "(the same cap on the epochs of one inner loop, after the lambda_2 rule, as cafe-lab's "
              "scheduler.max_inner_epochs; pop_inner_cnt counts the epochs of the current loop)"),
        Patch("cafe", "distill.py",
              ".reshape(args.batch_real * 10, 3, 32, 32)",
              ".reshape(args.batch_real * num_classes, channel, im_size[0], im_size[1])", 1, "compat",
              "distill.py hard-codes CIFAR-10's 10 classes and 3x32x32 images when it gathers the "
              "real batches; Fashion-MNIST is 1x28x28. The dataset's own values are used instead "
              "(identical on CIFAR-10). criterion_middle and the embedding means keep their "
              "hard-coded 10 (= the classes of Fashion-MNIST too)."),
        Patch("cafe", "distill.py",
              ".reshape(args.ipc * 10, 3, 32, 32)",
              ".reshape(args.ipc * num_classes, channel, im_size[0], im_size[1])", 1, "compat",
              "the same hard-coded 10 x 3x32x32 for the synthetic batch."),
        Patch("cafe", "distill.py", "_feature.view(10, ", "_feature.reshape(10, ", 2, "compat",
              "criterion_middle's `.view` of the block features: the same channels-last issue "
              "(with DSA) as in networks.py; `.reshape` gives the same values."),
        Patch("cafe", "distill.py", "_features[0].view(10, ", "_features[0].reshape(10, ", 2, "compat",
              "(the same, for the per-class mean embeddings)"),
        Patch("cafe", "distill.py", "                acc_watcher.append(acc_test.detach().cpu())\n",
              "                acc_watcher.append(acc_test.detach().cpu().clone())\n", 1, "compat",
              "the outer watcher's window aliases its accumulator on the CPU: distill.py:304-306 adds "
              "each class's accuracy into acc_test in place and appends acc_test.detach().cpu(), which "
              "on a CPU tensor is the same storage (on a GPU .cpu() copies), so every entry of the "
              "window is the live accumulator, max - min is always 0 and the outer loop ends after 10 "
              "steps whatever the accuracies. `.clone()` gives the GPU behaviour."),
        Patch("cafe", "distill.py", "                    acc_inner_watcher.append(acc_inner_test.detach().cpu())\n",
              "                    acc_inner_watcher.append(acc_inner_test.detach().cpu().clone())\n", 1, "compat",
              "(the same aliasing in the inner watcher, distill.py:336-338: there the range is always 0 < "
              "lambda_2 and the inner loop never ends by its rule on a CPU)"),
        Patch("cafe", "distill.py",
              "        logger.info('Hyper-parameters: \\n', args.__dict__)\n",
              "        logger.info('Hyper-parameters: \\n' + str(args.__dict__))\n", 1, "compat",
              "logger.info with an extra argument and no %-placeholder makes the logging module "
              "print a '--- Logging error ---' traceback (not fatal, but it buries the output); "
              "the message is formatted as intended."),
    ]
)

_FMNIST_BRANCH = (
    "    elif dataset == 'FashionMNIST':\n"
    "        channel = 1\n"
    "        im_size = (28, 28)\n"
    "        num_classes = 10\n"
    "        mean = [0.2861]\n"
    "        std = [0.3530]\n"
    "        transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean=mean, std=std)])\n"
    "        dst_train = datasets.FashionMNIST(data_path, train=True, download=True, transform=transform) # no augmentation\n"
    "        dst_test = datasets.FashionMNIST(data_path, train=False, download=True, transform=transform)\n"
    "        class_names = dst_train.classes\n"
    "        class_map = {x: x for x in range(num_classes)}\n\n"
)
_MTT_SAVE = "        timestamps.append([p.detach().cpu() for p in teacher_net.parameters()])\n"
_MTT_FLAGS = (
    "    parser.add_argument('--harness_aug', type=int, default=1, help='cafe-lab harness: 0 trains the "
    "experts without augmentation (upstream: always augmented)')\n"
    "    parser.add_argument('--harness_seed', type=int, default=-1, help='cafe-lab harness: seed numpy and "
    "torch at start (networks are still seeded from the clock by get_network)')\n"
)

# mtt-distillation (GeorgeCazenavette/mtt-distillation 50dccea): buffer.py only, to train
# reference experts on Fashion-MNIST on the CPU (scripts/reference/mtt_experts.py).
MTT_PATCHES = [
    Patch("mtt", "utils.py", "import kornia as K\n",
          "try:\n    import kornia as K\nexcept ImportError:  # harness: kornia is only needed for --zca\n"
          "    K = None\n", 1, "compat",
          "utils.py imports kornia at the top but uses it only for ZCA whitening (utils.py:147), which "
          "Fashion-MNIST runs do not use; the import is made optional so that the harness needs only "
          "torch, torchvision and scipy."),
    Patch("mtt", "utils.py",
          "from scipy.ndimage.interpolation import rotate as scipyrotate\n",
          "from scipy.ndimage import rotate as scipyrotate\n", 1, "compat",
          "scipy.ndimage.interpolation is gone from current SciPy; `rotate` lives in scipy.ndimage."),
    Patch("mtt", "utils.py", "    elif dataset.startswith('CIFAR100'):\n",
          _FMNIST_BRANCH + "    elif dataset.startswith('CIFAR100'):\n", 1, "compat",
          "mtt-distillation has no Fashion-MNIST branch (utils.py:46-135); the branch is DC's "
          "(DatasetCondensation utils.py:24-33: 1x28x28, mean 0.2861, std 0.3530) plus the identity "
          "class_map that mtt's buffer.py reads."),
    Patch("mtt", "utils.py",
          "    net_width, net_depth, net_act, net_norm, net_pooling = 128, 3, 'relu', 'instancenorm', 'avgpooling'\n",
          "    net_width, net_depth, net_act, net_norm, net_pooling = int(os.environ.get('HARNESS_NET_WIDTH', 128)), "
          "3, 'relu', 'instancenorm', 'avgpooling'\n", 1, "harness",
          "HARNESS_NET_WIDTH (environment) sets the ConvNet width (upstream 128, utils.py:189); the "
          "reduced runs use 32."),
    Patch("mtt", "buffer.py", _MTT_SAVE,
          "        timestamps.append([p.detach().cpu().clone() for p in teacher_net.parameters()])\n", 2, "compat",
          "on the CPU `p.detach().cpu()` returns the live parameter itself (no copy), so every saved "
          "epoch aliases the final weights and the trajectory is one point repeated; on a GPU `.cpu()` "
          "copies. `.clone()` gives the GPU behaviour everywhere."),
    Patch("mtt", "buffer.py",
          "                                        criterion=criterion, args=args, aug=True)\n",
          "                                        criterion=criterion, args=args, aug=bool(args.harness_aug))\n",
          1, "harness",
          "--harness_aug 0 trains the experts without augmentation (upstream always augments: DSA, or "
          "DC's crop_scale_rotate under --dsa False, buffer.py:63-64,84-85), as the earlier reference "
          "run of the README did."),
    Patch("mtt", "buffer.py", "    parser.add_argument('--save_interval', type=int, default=10)\n",
          "    parser.add_argument('--save_interval', type=int, default=10)\n" + _MTT_FLAGS, 1, "harness",
          "adds the opt-in --harness_* flags (defaults: upstream behaviour)."),
    Patch("mtt", "buffer.py", "    args = parser.parse_args()\n",
          "    args = parser.parse_args()\n"
          "    if args.harness_seed >= 0:\n        torch.manual_seed(args.harness_seed)\n", 1, "harness",
          "--harness_seed N seeds torch once at start (the data loader's shuffling); "
          "get_network still reseeds torch from the clock for every network (utils.py:195)."),
] + _view_patches("mtt", 5, 4)

PATCHES = PATCHES + MTT_PATCHES

# The files the harness runs or imports, per repository.
FILES = {
    "dc": ["main.py", "main_DM.py", "utils.py", "networks.py"],
    "cafe": ["distill.py", "utils.py", "networks.py"],
    "mtt": ["buffer.py", "utils.py", "networks.py"],
}


class PatchError(RuntimeError):
    pass


def _check_repo(kind, path):
    if not path:
        raise PatchError(f"no path given for the {kind} reference repository")
    missing = [f for f in FILES[kind] if not os.path.isfile(os.path.join(path, f))]
    if missing:
        url = {"dc": "VICO-UoE/DatasetCondensation", "cafe": "kaiwang960112/CAFE",
               "mtt": "GeorgeCazenavette/mtt-distillation"}[kind]
        raise PatchError(
            f"{path} is not a checkout of {url}: missing {', '.join(missing)}. "
            f"Give a work tree (e.g. `git clone <mirror or URL of {url}> DIR`).")


def _revision(path):
    try:
        out = subprocess.run(["git", "-C", path, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def make_scratch_copy(kind, repo, out_dir):
    """Copies the needed files of `repo` into `out_dir` and applies the `kind` patches.

    Returns (revision of the checkout, list of applied patches). Line endings are normalised
    to LF in the copy (CAFE's distill.py is CRLF), so the patches match either way.
    """
    _check_repo(kind, repo)
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    texts = {}
    for f in FILES[kind]:
        with open(os.path.join(repo, f), encoding="utf-8", newline="") as fh:
            texts[f] = fh.read().replace("\r\n", "\n")
    applied = []
    for p in PATCHES:
        if p.repo != kind:
            continue
        n = texts[p.path].count(p.old)
        if n != p.count:
            raise PatchError(
                f"{kind}/{p.path}: expected {p.count} occurrence(s) of {p.old.strip()!r}, found {n}; "
                "the reference code differs from the revision these patches were written for "
                "(DatasetCondensation 53f63a6, CAFE b718ff5, mtt-distillation 50dccea)")
        texts[p.path] = texts[p.path].replace(p.old, p.new)
        applied.append(p)
    for f, text in texts.items():
        with open(os.path.join(out_dir, f), "w", encoding="utf-8") as fh:
            fh.write(text)
    return _revision(repo), applied


def describe():
    """The patch list as Markdown (one line per patch)."""
    lines = []
    for i, p in enumerate(PATCHES, 1):
        lines.append(f"{i}. `{p.repo}/{p.path}` ({p.kind}, x{p.count}): `{p.old.strip()[:70]}` -> "
                     f"`{p.new.strip().splitlines()[0][:70]}`. {p.why}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--list", action="store_true", help="print the patches and exit")
    ap.add_argument("--dc-repo", help="checkout of VICO-UoE/DatasetCondensation")
    ap.add_argument("--cafe-repo", help="checkout of kaiwang960112/CAFE")
    ap.add_argument("--mtt-repo", help="checkout of GeorgeCazenavette/mtt-distillation")
    ap.add_argument("--out", help="scratch folder (its dc/, cafe/ and mtt/ subfolders are replaced)")
    args = ap.parse_args()
    if args.list:
        print(describe())
        return 0
    if not args.out or not (args.dc_repo or args.cafe_repo or args.mtt_repo):
        ap.error("give --out and at least one of --dc-repo / --cafe-repo / --mtt-repo (or --list)")
    try:
        for kind, repo in (("dc", args.dc_repo), ("cafe", args.cafe_repo), ("mtt", args.mtt_repo)):
            if repo:
                rev, applied = make_scratch_copy(kind, repo, os.path.join(args.out, kind))
                print(f"{kind}: {repo} @ {rev}: {len(applied)} patches -> {os.path.join(args.out, kind)}")
    except PatchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
