#!/usr/bin/env python3
"""Scratch copies of SRe2L's and RDED's public code, patched to run on the CPU on Fashion-MNIST.

VILA-Lab/SRe2L (tested at 8d00cba; its 32-pixel code is in `SRe2L/*small_dataset/`) and
LINs-lab/RDED (tested at 3f6453d) target a GPU, CIFAR/ImageNet shapes and normalisations and
torchvision models. Like patch_reference.py, every patch is an exact text replacement that must
match a given number of times (else the harness stops), with its reason; the checkouts (or the
bare mirrors) are never edited. `harness_fmnist.py` (this folder) is copied into both copies;
the patches call it for Fashion-MNIST's normalisation, its 1-channel loader, its test set and
the ConvNet/teacher. The SRe2L copy also gets RDED's `synthesize/models.py` as
`convnet_rded.py` (the student/teacher class: SRe2L's small-dataset code only has ResNet-18).

Kinds: `compat` (needed to run at all here: CPU, 1x28x28, 10 classes), `harness` (opt-in
`--harness-*` flags; with their defaults the scripts behave as upstream, except where a
`compat` patch says otherwise).

    python3 patch_decoupled.py --list
    python3 patch_decoupled.py --sre2l-repo PATH --rded-repo PATH --out SCRATCH
PATH is a work tree or a bare git directory (read with `git archive HEAD`).
"""

import argparse
import io
import os
import shutil
import subprocess
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from patch_reference import Patch, PatchError  # noqa: E402

SMALL = "SRe2L/*small_dataset"

_RECOVER_TEACHER = (
    "    import torchvision\n\n"
    "    model_teacher = torchvision.models.get_model(\"resnet18\", num_classes=100)\n"
    "    model_teacher.conv1 = nn.Conv2d(3, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)\n"
    "    model_teacher.maxpool = nn.Identity()\n\n"
    "    model_teacher = nn.DataParallel(model_teacher).cuda()\n\n"
    "    checkpoint = torch.load(args.arch_path)\n"
    "    model_teacher.load_state_dict(checkpoint[\"state_dict\"])\n"
)
_RELABEL_STUDENT = (
    "model = torchvision.models.get_model(\"resnet18\", num_classes=100)\n"
    "model.conv1 = nn.Conv2d(3, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)\n"
    "model.maxpool = nn.Identity()\n"
)
_RELABEL_TEACHER = (
    "model_teacher = torchvision.models.get_model(\"resnet18\", num_classes=100)\n"
    "model_teacher.conv1 = nn.Conv2d(3, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)\n"
    "model_teacher.maxpool = nn.Identity()\n\n"
    "model_teacher = nn.DataParallel(model_teacher).cuda()\n\n"
    "checkpoint = torch.load(args.teacher_path)\n"
    "model_teacher.load_state_dict(checkpoint[\"state_dict\"])\n"
)
_RELABEL_FLAGS = (
    "parser.add_argument(\"--harness-seed\", default=-1, type=int, help=\"cafe-lab harness: seed python, numpy, torch\")\n"
    "parser.add_argument(\"--harness-width\", default=32, type=int, help=\"cafe-lab harness: ConvNet width\")\n"
    "parser.add_argument(\"--harness-data-root\", default=\"./data\", type=str, help=\"cafe-lab harness: torchvision root of FashionMNIST\")\n"
    "parser.add_argument(\"--harness-test-limit\", default=0, type=int, help=\"cafe-lab harness: test on the first N test images (0: all)\")\n"
    "parser.add_argument(\"--harness-teacher-eval\", default=0, type=int, help=\"cafe-lab harness: 1 puts the teacher in eval mode (upstream: never)\")\n"
)
_RDED_FLAGS = (
    "parser.add_argument(\"--harness-width\", default=128, type=int, help=\"cafe-lab harness: ConvNet width (upstream 128)\")\n"
    "parser.add_argument(\"--harness-data-root\", default=\"./data\", type=str, help=\"cafe-lab harness: torchvision root of FashionMNIST\")\n"
    "parser.add_argument(\"--harness-test-limit\", default=0, type=int, help=\"cafe-lab harness: test on the first N test images (0: all)\")\n"
    "parser.add_argument(\"--harness-skip-synth\", default=0, type=int, help=\"cafe-lab harness: 1 skips synthesis (relabel/validate an existing set)\")\n"
    "parser.add_argument(\"--harness-skip-valid\", default=0, type=int, help=\"cafe-lab harness: 1 skips validation\")\n"
)
_RDED_VAL = (
    "    val_loader = torch.utils.data.DataLoader(\n"
    "        ImageFolder(\n"
    "            classes=args.classes,\n"
    "            ipc=args.val_ipc,\n"
    "            mem=True,\n"
    "            root=args.val_dir,\n"
    "            transform=transforms.Compose(\n"
    "                [\n"
    "                    transforms.Resize(args.input_size // 7 * 8, antialias=True),\n"
    "                    transforms.CenterCrop(args.input_size),\n"
    "                    transforms.ToTensor(),\n"
    "                    normalize,\n"
    "                ]\n"
    "            ),\n"
    "        ),\n"
)
_RDED_DENORM = (
    "denormalize = transforms.Compose(\n"
    "    [\n"
    "        transforms.Normalize(\n"
    "            mean=[0.0, 0.0, 0.0], std=[1 / 0.229, 1 / 0.224, 1 / 0.225]\n"
    "        ),\n"
    "        transforms.Normalize(mean=[-0.485, -0.456, -0.406], std=[1.0, 1.0, 1.0]),\n"
    "    ]\n"
    ")\n"
)
_IMAGENET_NORM = "mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]"
_CPU = "CPU only: this machine has no GPU (the scripts call .cuda() unconditionally)."
_SAVE_1CH = ("image_np = images[id].data.cpu().numpy().transpose((1, 2, 0))\n",
             "image_np = images[id].data.cpu().numpy().transpose((1, 2, 0)).squeeze(2)\n")
_SAVE_WHY = ("the image is HxWx1 for 1-channel data, which PIL's fromarray refuses ('Cannot handle "
             "this data type'); squeezed to HxW, saved as an 8-bit grayscale JPEG as upstream saves its "
             "RGB JPEGs.")

PATCHES = [
    # ---------------- SRe2L, recover_cifar.py ----------------
    Patch("sre2l", f"{SMALL}/recover_cifar.py", "from utils import BNFeatureHook, lr_cosine_policy\n",
          "from utils import BNFeatureHook, lr_cosine_policy\nimport harness_fmnist\n", 1, "harness",
          "imports the Fashion-MNIST glue (harness_fmnist.py)."),
    Patch("sre2l", f"{SMALL}/recover_cifar.py",
          "    mean = np.array([0.4914, 0.4822, 0.4465])\n    std = np.array([0.2023, 0.1994, 0.2010])\n",
          "    mean = np.array(harness_fmnist.MEAN)\n    std = np.array(harness_fmnist.STD)\n", 2, "compat",
          "clip_cifar / denormalize_cifar (recover_cifar.py:18-42) clamp to CIFAR's [0, 1] range in "
          "normalised units; Fashion-MNIST's mean 0.2861, std 0.3530 (the teacher's normalisation) instead."),
    Patch("sre2l", f"{SMALL}/recover_cifar.py", "    for c in range(3):\n", "    for c in range(len(mean)):\n", 2,
          "compat", "(the same two functions loop over 3 channels; Fashion-MNIST has 1)"),
    Patch("sre2l", f"{SMALL}/recover_cifar.py",
          "    targets_all = torch.LongTensor(np.arange(100))\n\n"
          "    for kk in range(0, 100, batch_size):\n"
          "        targets = targets_all[kk : min(kk + batch_size, 100)].to(\"cuda\")\n",
          "    targets_all = torch.LongTensor(np.arange(10))\n\n"
          "    for kk in range(0, 10, batch_size):\n"
          "        targets = targets_all[kk : min(kk + batch_size, 10)]\n", 1, "compat",
          "recover_cifar.py:58-61 hard-codes CIFAR-100's 100 classes (one image per class per "
          "ipc_id, in batches of --batch-size); Fashion-MNIST has 10. " + _CPU),
    Patch("sre2l", f"{SMALL}/recover_cifar.py",
          "inputs = torch.randn((targets.shape[0], 3, 32, 32), requires_grad=True, device=\"cuda\", dtype=data_type)",
          "inputs = torch.randn((targets.shape[0], 1, 28, 28), requires_grad=True, device=\"cpu\", dtype=data_type)",
          1, "compat", "recover_cifar.py:64 hard-codes 3x32x32 noise on the GPU; 1x28x28 on the CPU."),
    Patch("sre2l", f"{SMALL}/recover_cifar.py", "        criterion = criterion.cuda()\n", "", 1, "compat", _CPU),
    Patch("sre2l", f"{SMALL}/recover_cifar.py", "        " + _SAVE_1CH[0], "        " + _SAVE_1CH[1], 1, "compat",
          _SAVE_WHY),
    Patch("sre2l", f"{SMALL}/recover_cifar.py", _RECOVER_TEACHER,
          "    model_teacher = harness_fmnist.load_teacher(args.arch_path, args.harness_width)\n", 1, "compat",
          "recover_cifar.py:176-185 builds torchvision's CIFAR ResNet-18 on the GPU; here the teacher "
          "is RDED's conv3 ConvNet (width --harness-width) loaded from the converted cafe-lab teacher "
          "(its 'state_dict'). model_teacher.eval() and requires_grad False (:191-193) stay as upstream."),
    Patch("sre2l", f"{SMALL}/recover_cifar.py",
          "    parser.add_argument(\"--ipc-end\", default=1, type=int)\n",
          "    parser.add_argument(\"--ipc-end\", default=1, type=int)\n"
          "    parser.add_argument(\"--harness-seed\", default=-1, type=int, help=\"cafe-lab harness: seed python, numpy, torch\")\n"
          "    parser.add_argument(\"--harness-width\", default=32, type=int, help=\"cafe-lab harness: ConvNet width\")\n",
          1, "harness", "adds --harness-seed and --harness-width."),
    Patch("sre2l", f"{SMALL}/recover_cifar.py", "    args = parse_args()\n    args.milestone = 1\n",
          "    args = parse_args()\n    args.milestone = 1\n    harness_fmnist.seed(args.harness_seed)\n", 1, "harness",
          "--harness-seed N seeds python's random (the jitter), numpy and torch (the noise) once; "
          "upstream seeds nothing."),
    # ---------------- SRe2L, relabel_cifar.py ----------------
    Patch("sre2l", f"{SMALL}/relabel_cifar.py", "from imagenet_ipc import ImageFolderIPC\n",
          "from imagenet_ipc import ImageFolderIPC\nimport harness_fmnist\n", 1, "harness",
          "imports the Fashion-MNIST glue."),
    Patch("sre2l", f"{SMALL}/relabel_cifar.py", "parser.add_argument(\"--ipc\", default=50, type=int)\n",
          "parser.add_argument(\"--ipc\", default=50, type=int)\n" + _RELABEL_FLAGS, 1, "harness",
          "adds the --harness-* flags (seed, width, data root, test limit, teacher mode)."),
    Patch("sre2l", f"{SMALL}/relabel_cifar.py", "args = parser.parse_args()\n",
          "args = parser.parse_args()\nharness_fmnist.seed(args.harness_seed)\n", 1, "harness",
          "--harness-seed N seeds python, numpy (mixup's lambda) and torch (the student's "
          "initialisation, the shuffling, mixup's permutation) once. Upstream seeds nothing, and "
          "torch's default seed is a constant: every run would train the same student."),
    Patch("sre2l", f"{SMALL}/relabel_cifar.py", "        transforms.RandomCrop(32, padding=4),\n",
          "        transforms.RandomCrop(28, padding=4),\n", 1, "compat",
          "relabel_cifar.py:51 crops to CIFAR's 32 pixels (padding 4); Fashion-MNIST is 28."),
    Patch("sre2l", f"{SMALL}/relabel_cifar.py",
          "        transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),\n",
          "        transforms.Normalize(harness_fmnist.MEAN, harness_fmnist.STD),\n", 2, "compat",
          "CIFAR's mean/std (relabel_cifar.py:54,61) -> Fashion-MNIST's, the teacher's normalisation."),
    Patch("sre2l", f"{SMALL}/relabel_cifar.py",
          "trainset = ImageFolderIPC(root=args.syn_data_path, transform=transform_train, ipc=args.ipc)\n",
          "trainset = ImageFolderIPC(root=args.syn_data_path, transform=transform_train, ipc=args.ipc, "
          "loader=harness_fmnist.gray_loader)\n", 1, "compat",
          "torchvision's default loader converts the saved images to RGB; Fashion-MNIST is 1 channel."),
    Patch("sre2l", f"{SMALL}/relabel_cifar.py", "num_workers=2)\n", "num_workers=0)\n", 2, "compat",
          "no loader worker processes: 1 CPU thread, a few images (same batches)."),
    Patch("sre2l", f"{SMALL}/relabel_cifar.py",
          "testset = torchvision.datasets.CIFAR100(root=\"./data\", train=False, download=True, transform=transform_test)\n",
          "testset = harness_fmnist.test_set(args.harness_data_root, args.harness_test_limit, transform_test)\n",
          1, "compat", "the test set: Fashion-MNIST's (first --harness-test-limit images, as cafe-lab's "
          "--test-limit) instead of CIFAR-100's."),
    Patch("sre2l", f"{SMALL}/relabel_cifar.py", _RELABEL_STUDENT,
          "model = harness_fmnist.convnet(args.harness_width)\n", 1, "compat",
          "the student: RDED's conv3 ConvNet with BatchNorm (the teacher's architecture, as upstream "
          "uses the teacher's ResNet-18) instead of torchvision's CIFAR ResNet-18."),
    Patch("sre2l", f"{SMALL}/relabel_cifar.py", _RELABEL_TEACHER,
          "model_teacher = harness_fmnist.load_teacher(args.teacher_path, args.harness_width)\n"
          "if args.harness_teacher_eval:\n    model_teacher.eval()\n", 1, "compat",
          "the teacher: the converted cafe-lab ConvNet on the CPU. Upstream never calls "
          "model_teacher.eval() (its teacher labels in training mode: batch statistics); that stays "
          "the default, --harness-teacher-eval 1 puts it in eval mode as cafe-lab does."),
    Patch("sre2l", f"{SMALL}/relabel_cifar.py", "    index = torch.randperm(batch_size).cuda()\n",
          "    index = torch.randperm(batch_size)\n", 1, "compat", _CPU),
    # ---------------- RDED ----------------
    Patch("rded", "argument.py", "args = parser.parse_args()\n", _RDED_FLAGS + "args = parser.parse_args()\n", 1,
          "harness", "adds the --harness-* flags (width, data root, test limit, skip synthesis / validation)."),
    Patch("rded", "argument.py", "elif args.subset == \"tinyimagenet\":\n",
          "elif args.subset == \"fashion-mnist\":\n    args.nclass = 10\n    args.classes = range(args.nclass)\n"
          "    args.val_ipc = 1000\n    args.input_size = 28\n\n"
          "elif args.subset == \"tinyimagenet\":\n", 1, "compat",
          "a Fashion-MNIST subset (argument.py:167-229 knows CIFAR/ImageNet/Tiny only): 10 classes, "
          "28 pixels, as cifar10's rule (val_ipc unused: the test set is the harness's)."),
    Patch("rded", "main.py", "    synth_main(args)\n    valid_main(args)\n",
          "    if not args.harness_skip_synth:\n        synth_main(args)\n"
          "    if not args.harness_skip_valid:\n        valid_main(args)\n", 1, "harness",
          "--harness-skip-synth 1 relabels/validates an existing set (one selection, several "
          "students, and the random subset); --harness-skip-valid 1 only selects."),
    Patch("rded", "synthesize/utils.py", "import torch\n", "import torch\nimport harness_fmnist\n", 1, "harness",
          "imports the Fashion-MNIST glue."),
    Patch("rded", "synthesize/utils.py", ".cuda()", "", 3, "compat", _CPU),
    Patch("rded", "synthesize/utils.py", f"normalize = transforms.Normalize({_IMAGENET_NORM})\n",
          "normalize = transforms.Normalize(mean=harness_fmnist.MEAN, std=harness_fmnist.STD)\n", 1, "compat",
          "RDED normalises every dataset with ImageNet's mean/std (synthesize/utils.py:77), 3 channels; "
          "Fashion-MNIST is 1 channel and the converted teacher was trained with cafe-lab's "
          "normalisation (mean 0.2861, std 0.3530), which the selection must feed it."),
    Patch("rded", "synthesize/utils.py", _RDED_DENORM,
          "denormalize = transforms.Compose(\n    [\n"
          "        transforms.Normalize(mean=[0.0], std=[1 / s for s in harness_fmnist.STD]),\n"
          "        transforms.Normalize(mean=[-m for m in harness_fmnist.MEAN], std=[1.0]),\n    ]\n)\n",
          1, "compat", "(its inverse, before the selected crops are saved)"),
    Patch("rded", "synthesize/utils.py", "        (n, 3, out_size, out_size),\n",
          "        (n, input_img.shape[1], out_size, out_size),\n", 1, "compat",
          "mix_images (synthesize/utils.py:143-147) allocates 3 channels; the crops' own channel count."),
    Patch("rded", "synthesize/utils.py",
          "            if dataset in [\"cifar10\", \"cifar100\"]:\n                size = 32\n",
          "            if dataset == \"fashion-mnist\":\n                size = 28\n"
          "            elif dataset in [\"cifar10\", \"cifar100\"]:\n                size = 32\n", 1, "compat",
          "load_model's image size for the ConvNet: 28 for Fashion-MNIST."),
    Patch("rded", "synthesize/utils.py", "                net_width=128,\n                channel=3,\n",
          "                net_width=sys_args.harness_width,\n"
          "                channel=1 if dataset == \"fashion-mnist\" else 3,\n", 1, "compat",
          "the ConvNet's input channels (1) and width (--harness-width, upstream 128: the converted "
          "teacher is width 32). With channel 1 and 28 pixels RDED's ConvNet pads its first "
          "convolution by 3 (synthesize/models.py:118-128), as DC's and cafe-lab's."),
    Patch("rded", "synthesize/utils.py", "            \"cifar100\",\n        ]:\n",
          "            \"cifar100\",\n            \"fashion-mnist\",\n        ]:\n", 1, "compat",
          "loads the teacher from ./data/pretrain_models/fashion-mnist_conv3.pth (['model']), where "
          "the harness writes the converted cafe-lab teacher."),
    Patch("rded", "synthesize/main.py", ".cuda()", "", 1, "compat", _CPU),
    Patch("rded", "synthesize/main.py", "        " + _SAVE_1CH[0], "        " + _SAVE_1CH[1], 1, "compat", _SAVE_WHY),
    Patch("rded", "validation/main.py", ".cuda()", "", 6, "compat", _CPU),
    Patch("rded", "validation/main.py",
          "    normalize = transforms.Normalize(\n        " + _IMAGENET_NORM + "\n    )\n",
          "    normalize = transforms.Normalize(mean=harness_fmnist.MEAN, std=harness_fmnist.STD)\n", 1, "compat",
          "ImageNet's 3-channel mean/std (validation/main.py:111-113) -> Fashion-MNIST's (see above)."),
    Patch("rded", "validation/main.py", "from validation.utils import (\n",
          "import harness_fmnist\nfrom validation.utils import (\n", 1, "harness", "imports the Fashion-MNIST glue."),
    Patch("rded", "validation/main.py", _RDED_VAL,
          "    val_loader = torch.utils.data.DataLoader(\n"
          "        harness_fmnist.test_set(args.harness_data_root, args.harness_test_limit,\n"
          "                                transforms.Compose([transforms.ToTensor(), normalize])),\n",
          1, "compat",
          "the test set: Fashion-MNIST's first --harness-test-limit test images, as they are "
          "(cafe-lab's), instead of an ImageFolder of val_ipc JPEGs per class resized to "
          "input_size*8/7 and centre-cropped back (validation/main.py:146-160), which on 28-pixel "
          "images would test on 32-pixel rescaled, cropped images."),
    Patch("rded", "validation/utils.py", "import torch\n", "import torch\nimport harness_fmnist\n", 1, "harness",
          "imports the Fashion-MNIST glue."),
    Patch("rded", "validation/utils.py", "        super(ImageFolder, self).__init__(**kwargs)\n",
          "        kwargs.setdefault(\"loader\", harness_fmnist.gray_loader)\n"
          "        super(ImageFolder, self).__init__(**kwargs)\n", 1, "compat",
          "torchvision's default loader converts to RGB; Fashion-MNIST is 1 channel."),
    Patch("rded", "validation/utils.py", ".cuda()", "", 2, "compat", _CPU),
]

FILES = {
    "sre2l": [f"{SMALL}/recover_cifar.py", f"{SMALL}/relabel_cifar.py", f"{SMALL}/utils.py",
              f"{SMALL}/imagenet_ipc.py"],
    "rded": ["main.py", "argument.py", "synthesize/__init__.py", "synthesize/main.py", "synthesize/utils.py",
             "synthesize/models.py", "validation/__init__.py", "validation/main.py", "validation/utils.py"],
}
TESTED = {"sre2l": "8d00cba", "rded": "3f6453d"}


def _read_repo(repo, files):
    """{path: text} of `files` from a work tree or a bare git directory (HEAD)."""
    out = {}
    bare = not os.path.isdir(os.path.join(repo, ".git")) and os.path.isfile(os.path.join(repo, "HEAD"))
    for f in files:
        if bare:
            p = subprocess.run(["git", "--git-dir", repo, "show", f"HEAD:{f}"], capture_output=True, text=True)
            if p.returncode != 0:
                if f.endswith("__init__.py"):
                    continue  # namespace packages work without one
                raise PatchError(f"{repo} has no {f}")
            out[f] = p.stdout
        else:
            path = os.path.join(repo, f)
            if not os.path.isfile(path):
                if f.endswith("__init__.py"):
                    continue
                raise PatchError(f"{repo} has no {f}")
            with open(path, encoding="utf-8", newline="") as fh:
                out[f] = fh.read()
    return {k: v.replace("\r\n", "\n") for k, v in out.items()}


def revision(repo):
    for cmd in (["git", "--git-dir", repo, "rev-parse", "--short", "HEAD"],
                ["git", "-C", repo, "rev-parse", "--short", "HEAD"]):
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode == 0:
            return p.stdout.strip()
    return "unknown"


def make_scratch_copy(kind, repo, out_dir, rded_repo=None):
    """Writes the patched files of `repo` into `out_dir` (replaced). For SRe2L the files go to the
    copy's root (the scripts import their neighbours), with harness_fmnist.py and RDED's ConvNet
    (from `rded_repo`) as convnet_rded.py. Returns (revision, applied patches)."""
    texts = _read_repo(repo, FILES[kind])
    applied = []
    for p in PATCHES:
        if p.repo != kind:
            continue
        n = texts[p.path].count(p.old)
        if n != p.count:
            raise PatchError(f"{kind}/{p.path}: expected {p.count} occurrence(s) of {p.old.strip()[:80]!r}, "
                             f"found {n}; the reference differs from {TESTED[kind]}, which these patches target")
        texts[p.path] = texts[p.path].replace(p.old, p.new)
        applied.append(p)
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    for f, text in texts.items():
        dst = os.path.join(out_dir, os.path.basename(f) if kind == "sre2l" else f)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, "w", encoding="utf-8") as fh:
            fh.write(text)
    shutil.copy(os.path.join(HERE, "harness_fmnist.py"), os.path.join(out_dir, "harness_fmnist.py"))
    if kind == "sre2l":
        models = _read_repo(rded_repo, ["synthesize/models.py"])["synthesize/models.py"]
        with open(os.path.join(out_dir, "convnet_rded.py"), "w", encoding="utf-8") as fh:
            fh.write(models)
    return revision(repo), applied


def describe():
    lines = []
    for i, p in enumerate(PATCHES, 1):
        lines.append(f"{i}. `{p.repo}/{p.path}` ({p.kind}, x{p.count}): `{p.old.strip().splitlines()[0][:70]}` -> "
                     f"`{(p.new.strip().splitlines() or [''])[0][:70]}`. {p.why}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--sre2l-repo")
    ap.add_argument("--rded-repo")
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.list:
        print(describe())
        return 0
    if not (a.out and a.sre2l_repo and a.rded_repo):
        ap.error("give --sre2l-repo, --rded-repo and --out (or --list)")
    try:
        for kind, repo in (("sre2l", a.sre2l_repo), ("rded", a.rded_repo)):
            rev, applied = make_scratch_copy(kind, repo, os.path.join(a.out, kind), a.rded_repo)
            print(f"{kind}: {repo} @ {rev}: {len(applied)} patches -> {os.path.join(a.out, kind)}")
    except PatchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
