"""cafe-lab from Python: condense a dataset into a tiny synthetic set, evaluate any set
(yours, cafe-lab's, or another tool's ``.pt`` file) under a published protocol, beside the
random baseline and DD-Ranking's metrics.

    import cafe_lab
    s = cafe_lab.condense(dataset="shapes", matcher="distribution", ipc=10, iterations=100)
    images = torch.from_numpy(s.images)          # shares memory, NCHW float32
    r = cafe_lab.evaluate(s.images, s.labels, dataset="shapes", protocol="dm", eval_nets=3)
    r.accuracy                                    # {'convnet': {'synthetic': 0.81, 'random': 0.62}}

Settings are the keys of a run's ``config.json``; ``eval_X=...`` means ``eval.X`` (as the CLI's
``--eval-X``), and ``set=["arch.width=8"]`` applies ``--set`` assignments. Long calls release
the GIL; Ctrl-C (a notebook's "interrupt") stops a condensation after its current iteration
with a checkpoint (``condense(resume=...)`` continues) and raises ``KeyboardInterrupt``.
Errors are Python exceptions carrying cafe-lab's messages.
"""

from __future__ import annotations

import builtins
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Union

import numpy as np

from . import _native
from ._native import CafeLabError

__all__ = ["condense", "evaluate", "load", "list", "SyntheticSet", "Results", "CafeLabError"]
__version__ = _native.__version__

PathLike = Union[str, "os.PathLike[str]"]


class Results(dict):
    """A run's ``results.json`` as a dict, with short views of what one usually wants."""

    @property
    def accuracy(self) -> Dict[str, Dict[str, float]]:
        """Mean test accuracy (fraction) per architecture, then per set (``synthetic``,
        ``random``, ``whole``, ...)."""
        out: Dict[str, Dict[str, float]] = {}
        for ev in self.get("evaluations", []):
            out.setdefault(ev["arch"], {})[ev["set"]] = ev["mean"]
        return out

    @property
    def metrics(self) -> list:
        """DD-Ranking's fair metrics per architecture (``eval_metrics=True``)."""
        return self.get("metrics", [])

    @property
    def notes(self) -> list:
        """What was assumed or done that the settings do not say."""
        return self.get("notes", [])


class SyntheticSet:
    """A synthetic set: ``images`` (float32 NCHW, in the dataset's normalised space) and
    ``labels`` (int64, class-major) as numpy arrays, ``lr`` (a learned step size or None),
    ``soft_labels`` (learned label logits or None), every learned tensor in ``learned``,
    ``metadata`` (how it was made), ``results`` (its run's results, when it came from
    :func:`condense`) and ``path`` (its file, if any)."""

    def __init__(self, fields: Dict[str, Any], path: Optional[Path] = None,
                 results: Optional[Results] = None):
        self.images: np.ndarray = fields["images"]
        self.labels: np.ndarray = fields["labels"]
        self.learned: Dict[str, np.ndarray] = dict(fields["learned"])
        self.mean = builtins.list(fields["mean"])
        self.std = builtins.list(fields["std"])
        self.ipc: int = fields["ipc"]
        self.classes: int = fields["classes"]
        self.metadata: Dict[str, str] = dict(fields["metadata"])
        self.path = path
        self.results = results

    @property
    def lr(self) -> Optional[float]:
        lr = self.learned.get("lr")
        return None if lr is None else float(lr.reshape(-1)[0])

    @property
    def soft_labels(self) -> Optional[np.ndarray]:
        return self.learned.get("label_logits")

    def save(self, path: PathLike) -> Path:
        """Writes the set in cafe-lab's format (safetensors; ``cafe-lab evaluate --synthetic``
        and :func:`load` read it back)."""
        path = Path(path)
        learned = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in self.learned.items()}
        _native.save_set(str(path), np.ascontiguousarray(self.images, dtype=np.float32),
                         np.ascontiguousarray(self.labels, dtype=np.int64), learned,
                         [float(x) for x in self.mean], [float(x) for x in self.std],
                         {str(k): str(v) for k, v in self.metadata.items()})
        return path

    def __repr__(self) -> str:
        extras = ", ".join(self.learned) or "none"
        return (f"SyntheticSet({self.metadata.get('dataset', '?')}: {self.classes} classes x "
                f"{self.ipc} images of {tuple(self.images.shape[1:])}, learned: {extras})")


def load(path: PathLike) -> SyntheticSet:
    """Reads a set file written by cafe-lab (``synthetic.safetensors``, or
    :meth:`SyntheticSet.save`)."""
    path = Path(path)
    return SyntheticSet(_native.load_set(str(path)), path=path)


def list() -> Dict[str, Any]:  # noqa: A001 - the CLI's `cafe-lab list`
    """Every registered matcher, scheduler, architecture and augmenter (name, description,
    default config), every published protocol, and the dataset names."""
    return json.loads(_native.list_plugins())


def condense(dataset: str = "shapes", matcher: Optional[str] = None, protocol: Optional[str] = None,
             ipc: int = 1, iterations: Optional[int] = None, seed: int = 0,
             out: Optional[PathLike] = None, *, resume: Optional[PathLike] = None,
             set: Iterable[str] = (), force: bool = False, progress: Union[str, bool] = "auto",
             **settings: Any) -> SyntheticSet:
    """Condenses ``dataset`` into ``ipc`` images per class with ``matcher`` (its published
    protocol unless ``protocol`` says otherwise), saves the set in ``out`` (default
    ``runs/<dataset>-<matcher>-<scheduler>-ipc<N>-seed<S>``), evaluates it beside the random
    baseline, and returns it with its ``results``. ``resume=DIR`` continues an interrupted run
    (the other arguments are then those saved in DIR)."""
    base = {"dataset": dataset, "ipc": ipc, "seed": seed}
    for key, value in (("matcher", matcher), ("protocol", protocol), ("iterations", iterations),
                       ("out", None if out is None else str(out))):
        if value is not None:
            base[key] = value
    callback, quiet = _progress(progress)
    text, folder = _native.condense(json.dumps(_settings(base, settings)), _strings(set),
                                    None if resume is None else str(resume), force, quiet, callback)
    folder = Path(folder)
    result = load(folder / "synthetic.safetensors")
    result.results = Results(json.loads(text))
    return result


def evaluate(images: Any, labels: Any = None, *, dataset: Optional[str] = None,
             protocol: Optional[str] = None, seed: Optional[int] = None, raw_pixels: Optional[bool] = None,
             lr: Optional[float] = None, hard_labels: bool = False, factor: Optional[int] = None,
             labels_file: Optional[PathLike] = None, experiment: Optional[int] = None,
             out: Optional[PathLike] = None, set: Iterable[str] = (), force: bool = False,
             progress: Union[str, bool] = "auto", **settings: Any) -> Results:
    """Evaluates a synthetic set under ``protocol``'s evaluation on ``dataset``: fresh networks
    trained on the set alone and tested on the real test set, beside a random real subset of
    the same size (and DD-Ranking's metrics with ``eval_metrics=True``).

    ``images`` is a numpy array or torch tensor ``[N, C, H, W]`` in the dataset's normalised
    space (``raw_pixels=True``: pixels in [0, 1]), with ``labels`` ``[N]`` class indices,
    ``[N, classes]`` soft labels (logits or probabilities) or None (class-major order); ``lr``
    is a learned step size to train at. Or ``images`` is a path: a cafe-lab set file (evaluated
    with its own settings) or another tool's ``.pt`` file (mtt-distillation / DATM
    ``images_*.pt`` with ``labels_*.pt`` beside it, NCFM ``[images, labels]``,
    DatasetCondensation ``res_*.pt``; ``experiment``, ``labels_file``, ``factor`` for what the
    file cannot say). ``seed`` (default: a cafe-lab set's own, else 0) picks the networks.
    Results go to ``out`` when given, else to a temporary folder."""
    base: Dict[str, Any] = {}
    if seed is not None:
        base["seed"] = seed
    if dataset is not None:
        base["dataset"] = dataset
    if protocol is not None:
        base["protocol"] = protocol
    callback, quiet = _progress(progress)
    with tempfile.TemporaryDirectory(prefix="cafe-lab-") as scratch:
        base["out"] = str(out) if out is not None else os.path.join(scratch, "evaluate")
        text = json.dumps(_settings(base, settings))
        if isinstance(images, (str, os.PathLike)):
            path = Path(images)
            if labels is not None:
                raise ValueError("labels come from the file when images is a path; use labels_file for a "
                                 "separate .pt labels file")
            if dataset is None and _is_torch_file(path):
                raise ValueError(f"{path} is a PyTorch file, which does not say which dataset its set "
                                 f"was condensed on: pass dataset=...")
            result = _native.evaluate_file(str(path), text, _strings(set),
                                           None if labels_file is None else str(labels_file), experiment,
                                           raw_pixels, factor, lr, hard_labels, force, quiet, callback)
        else:
            if dataset is None:
                raise ValueError("arrays do not say which dataset they belong to: pass dataset=...")
            if labels_file is not None or experiment is not None:
                raise ValueError("labels_file and experiment describe a .pt file; pass labels with the arrays")
            pixels = _images(images)
            hard, soft = _labels(labels, len(pixels))
            result = _native.evaluate_arrays(pixels, hard, soft, text, _strings(set), raw_pixels, factor, lr,
                                             hard_labels, force, quiet, callback)
    return Results(json.loads(result))


def _settings(base: Dict[str, Any], settings: Dict[str, Any]) -> Dict[str, Any]:
    """The JSON layer of a call: its named arguments, then ``**settings`` (``eval_X`` into
    ``eval``)."""
    out = dict(base)
    evaluation = dict(settings.pop("eval", None) or {})
    for key, value in settings.items():
        if key.startswith("eval_"):
            evaluation[key[len("eval_"):]] = value
        else:
            out[key] = value
    if evaluation:
        out["eval"] = evaluation
    return out


def _strings(values: Iterable[str]) -> "builtins.list[str]":
    if isinstance(values, str):
        return [values]
    return [str(v) for v in values]


def _is_torch_file(path: Path) -> bool:
    if path.suffix.lower() in (".pt", ".pth"):
        return True
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"PK"
    except OSError:
        return False


def _to_numpy(x: Any) -> np.ndarray:
    """numpy, or a torch tensor (any device, with or without grad), as numpy."""
    if hasattr(x, "detach") and hasattr(x, "cpu") and hasattr(x, "numpy"):
        x = x.detach().cpu()
        if str(getattr(x, "dtype", "")) == "torch.bfloat16":
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def _images(images: Any) -> np.ndarray:
    a = _to_numpy(images)
    if a.ndim != 4:
        raise ValueError(f"images must be NCHW [N, C, H, W]; got an array of shape {a.shape}")
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"images must be floating-point (the dataset's normalised space, or raw pixels "
                         f"in [0, 1] with raw_pixels=True); got {a.dtype}" +
                         ("; for 8-bit pixels pass images / 255 with raw_pixels=True" if a.dtype == np.uint8 else ""))
    if len(a) == 0:
        raise ValueError("images is empty")
    return np.ascontiguousarray(a, dtype=np.float32)


def _labels(labels: Any, n: int):
    """(hard int64 [N] or None, soft float32 [N, classes] or None)."""
    if labels is None:
        return None, None
    a = _to_numpy(labels)
    if len(a) != n:
        raise ValueError(f"{len(a)} labels for {n} images")
    if a.ndim == 1 and (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
        return np.ascontiguousarray(a, dtype=np.int64), None
    if a.ndim == 1 and np.issubdtype(a.dtype, np.floating) and np.all(np.mod(a, 1) == 0):
        return np.ascontiguousarray(a, dtype=np.int64), None
    if a.ndim == 2 and np.issubdtype(a.dtype, np.floating):
        return None, np.ascontiguousarray(a, dtype=np.float32)
    raise ValueError(f"labels must be [N] class indices (integers) or [N, classes] soft labels (floats); "
                     f"got {a.dtype} of shape {a.shape}")


def _progress(progress: Union[str, bool]):
    """(callback for the native module or None, quiet). ``"auto"``: tqdm bars in a notebook when
    tqdm is installed, else the CLI's lines on stderr; ``"bar"``, ``"lines"``, False; or a
    callable ``f(event, task, label, total, done, message)`` with ``event`` one of "start",
    "step", "finish", "line"."""
    if progress is False or progress is None or progress == "none":
        return None, True
    if callable(progress):
        return progress, False
    if progress == "auto":
        progress = "bar" if _in_notebook() and _has_tqdm() else "lines"
    if progress == "lines" or progress is True:
        return None, False
    if progress == "bar":
        if not _has_tqdm():
            raise ValueError("progress='bar' needs tqdm: pip install tqdm")
        return _Bars(), False
    raise ValueError(f"progress must be 'auto', 'bar', 'lines' or False; got {progress!r}")


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython  # type: ignore
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _has_tqdm() -> bool:
    try:
        import tqdm  # noqa: F401  # type: ignore
    except ImportError:
        return False
    return True


class _Bars:
    """Draws cafe-lab's progress events as tqdm bars, one per task."""

    def __init__(self):
        from tqdm.auto import tqdm  # type: ignore
        self._tqdm = tqdm
        self._bars: Dict[int, Any] = {}

    def __call__(self, event: str, task: int, label: str, total: int, done: int, message: str) -> None:
        if event == "start":
            self._bars[task] = self._tqdm(total=total, initial=done, desc=label, leave=False)
        elif event == "step" and task in self._bars:
            bar = self._bars[task]
            bar.n = done
            if message:
                bar.set_postfix_str(message, refresh=False)
            bar.refresh()
        elif event == "finish" and task in self._bars:
            self._bars.pop(task).close()
        elif event == "line":
            self._tqdm.write(message)
