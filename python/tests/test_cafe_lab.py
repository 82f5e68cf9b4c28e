"""The installed `cafe_lab` wheel, end to end on the embedded `shapes` set (run by
tests/python.rs through `scripts/python/setup.sh`'s venv): condense, evaluate numpy and torch
inputs, round-trip a set, interrupt and resume, the `.pt` layouts written by PyTorch itself,
and malformed inputs that must raise Python exceptions, not crash."""

import os
import signal
import threading
import time

import numpy as np
import pytest
import torch

import cafe_lab

# DM on shapes shrunk to seconds: 2 images per class, width-8 ConvNet, one evaluation network
# of 30 epochs (enough to leave chance level, so that equal numbers mean something) tested on
# 200 images.
TINY = dict(batch_real=8, eval_nets=1, eval_epochs=30, eval_test_limit=200, set=["arch.width=8"])
EVAL = dict(dataset="shapes", protocol="dm", eval_nets=1, eval_epochs=30, eval_test_limit=200,
            set=["arch.width=8"], progress=False)


@pytest.fixture(scope="module")
def condensed(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "dm"
    return cafe_lab.condense(dataset="shapes", matcher="distribution", ipc=2, iterations=3, seed=1,
                             out=out, progress=False, **TINY)


def synthetic(results):
    return [ev["accuracies"] for ev in results["evaluations"] if ev["set"] == "synthetic"]


def test_list_names_plugins_protocols_and_datasets():
    found = cafe_lab.list()
    assert "distribution" in [m["name"] for m in found["matchers"]]
    assert "dm" in [p["name"] for p in found["protocols"]]
    assert "shapes" in found["datasets"]


def test_condense_returns_the_set_as_numpy(condensed):
    s = condensed
    assert s.images.shape == (20, 3, 16, 16) and s.images.dtype == np.float32
    assert s.labels.dtype == np.int64 and list(s.labels) == [c for c in range(10) for _ in range(2)]
    assert s.metadata["protocol"] == "dm" and s.metadata["dataset"] == "shapes"
    assert set(s.results.accuracy["convnet"]) == {"synthetic", "random"}
    assert s.lr is None and s.soft_labels is None


def test_torch_from_numpy_shares_the_images(condensed):
    images = condensed.images.copy()
    t = torch.from_numpy(images)
    t[0, 0, 0, 0] = 123.0
    assert images[0, 0, 0, 0] == 123.0


def test_a_set_round_trips_through_its_file(condensed, tmp_path):
    path = condensed.save(tmp_path / "copy.safetensors")
    back = cafe_lab.load(path)
    assert np.array_equal(back.images, condensed.images)
    assert np.array_equal(back.labels, condensed.labels)
    assert back.metadata == condensed.metadata
    # Evaluated with the settings it carries: the run's own numbers.
    again = cafe_lab.evaluate(path, progress=False)
    assert synthetic(again) == synthetic(condensed.results)


def test_numpy_and_torch_inputs_give_the_condensations_numbers(condensed):
    from_numpy = cafe_lab.evaluate(condensed.images, condensed.labels, seed=1, **EVAL)
    from_torch = cafe_lab.evaluate(torch.from_numpy(condensed.images), torch.from_numpy(condensed.labels),
                                   seed=1, **EVAL)
    assert synthetic(from_numpy) == synthetic(from_torch) == synthetic(condensed.results)
    assert "random" in from_numpy.accuracy["convnet"]


def test_a_long_call_releases_the_gil(condensed):
    # A Python thread that needs the GIL for every tick: were it held through the call (a
    # native call that never releases it), no tick could fall inside the call.
    ticks, stop = [], threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.005)

    ticker = threading.Thread(target=tick)
    ticker.start()
    try:
        started = time.monotonic()
        # Long enough to tell on a quiet machine too (30 epochs took under 0.2 s there).
        cafe_lab.evaluate(condensed.images, condensed.labels, **{**EVAL, "eval_epochs": 300})
        ended = time.monotonic()
    finally:
        stop.set()
        ticker.join()
    during = [t for t in ticks if started < t < ended]
    assert ended - started > 0.2, "the evaluation is too short to tell"
    # A tick at least every 50 ms of the call on average (ideal: every 5 ms).
    assert len(during) >= (ended - started) / 0.05, (len(during), ended - started)


def test_dd_ranking_metrics_come_back(condensed):
    r = cafe_lab.evaluate(condensed.images, condensed.labels, eval_metrics=True, eval_whole_nets=1,
                          eval_whole_epochs=1, **EVAL)
    (m,) = r.metrics
    assert {"hard_label_recovery", "improvement_over_random", "label_robust_score",
            "augmentation_robust_score"} <= set(m)


def write_layouts(s, folder):
    """The set in each layout the method repositories save, written by torch.save itself."""
    x, y = torch.from_numpy(s.images.copy()), torch.from_numpy(s.labels.copy())
    torch.save(x, folder / "images_best.pt")                       # mtt-distillation distill.py:242
    torch.save(y, folder / "labels_best.pt")
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    mean = torch.tensor(s.mean).view(1, -1, 1, 1)
    std = torch.tensor(s.std).view(1, -1, 1, 1)
    torch.save([x[perm] * std + mean, y[perm]], folder / "data_3.pt")   # NCFM utils/ddp.py:99 (raw pixels)
    torch.save({"data": [[x, y], [x * 0, y]], "accs_all_exps": {"ConvNet": [np.float64(0.5)]}},
               folder / "res_DM_shapes_ConvNet_2ipc.pt")            # DatasetCondensation main.py:225


def test_pt_layouts_written_by_pytorch(condensed, tmp_path):
    write_layouts(condensed, tmp_path)
    reference = synthetic(cafe_lab.evaluate(condensed.images, condensed.labels, **EVAL))
    mtt = cafe_lab.evaluate(tmp_path / "images_best.pt", **EVAL)
    assert synthetic(mtt) == reference
    assert any("labels_best.pt" in n for n in mtt.notes)
    dc = cafe_lab.evaluate(tmp_path / "res_DM_shapes_ConvNet_2ipc.pt", **EVAL)
    assert synthetic(dc) == reference
    assert any("2 experiments" in n for n in dc.notes)
    ncfm = cafe_lab.evaluate(tmp_path / "data_3.pt", **EVAL)
    assert any("raw pixels" in n for n in ncfm.notes) and any("class order" in n for n in ncfm.notes)


def test_soft_labels_and_a_learned_step_size(condensed):
    logits = torch.nn.functional.one_hot(torch.from_numpy(condensed.labels), 10).float() * 5
    r = cafe_lab.evaluate(condensed.images, logits, lr=0.02, **EVAL)
    (ev,) = [e for e in r["evaluations"] if e["set"] == "synthetic"]
    assert ev["soft_labels"] and ev["lr"] == pytest.approx(0.02)


def test_ctrl_c_leaves_a_checkpoint_that_resumes_to_the_same_set(tmp_path):
    # 1000 iterations: the run must still be going when the watcher (every 100 ms) sees the
    # SIGINT sent at iteration 5, also on a loaded machine (400 finished first there once).
    settings = dict(dataset="shapes", matcher="distribution", ipc=1, iterations=1000, seed=2,
                    **{**TINY, "eval_epochs": 1})

    condensing = set()

    def interrupt_at_iteration_5(event, task, label, total, done, message):
        # What a notebook's "interrupt" does: SIGINT to the kernel, in the middle of the run.
        if event == "start" and label == "condense":
            condensing.add(task)
        elif event == "step" and task in condensing and done == 5:
            os.kill(os.getpid(), signal.SIGINT)

    out = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt) as stopped:
        cafe_lab.condense(out=out, progress=interrupt_at_iteration_5, **settings)
    assert "cafe_lab.condense(resume=" in str(stopped.value)
    assert (out / "checkpoint.safetensors").exists()
    resumed = cafe_lab.condense(resume=out, progress=False)
    whole = cafe_lab.condense(out=tmp_path / "whole", progress=False, **settings)
    assert np.array_equal(resumed.images, whole.images)


def test_malformed_inputs_raise_python_exceptions(condensed, tmp_path):
    x, y = condensed.images, condensed.labels
    with pytest.raises(ValueError, match="NCHW"):
        cafe_lab.evaluate(x[0], y, **EVAL)
    with pytest.raises(ValueError, match="floating-point"):
        cafe_lab.evaluate(x.astype(np.uint8), y, **EVAL)
    with pytest.raises(ValueError, match="3x16x16"):
        cafe_lab.evaluate(np.zeros((20, 3, 32, 32), np.float32), y, **EVAL)
    with pytest.raises(ValueError, match="labels for"):
        cafe_lab.evaluate(x, y[:5], **EVAL)
    with pytest.raises(ValueError, match="outside the 10 classes"):
        cafe_lab.evaluate(x, y + 10, **EVAL)
    with pytest.raises(ValueError, match="non-finite"):
        cafe_lab.evaluate(np.full_like(x, np.nan), y, **EVAL)
    with pytest.raises(ValueError, match="shapes"):
        cafe_lab.evaluate(x, y, **{**EVAL, "dataset": "no-such-set"})
    with pytest.raises(ValueError, match="dataset"):
        cafe_lab.evaluate(x, y)
    write_layouts(condensed, tmp_path)
    with pytest.raises(ValueError, match="labels"):
        cafe_lab.evaluate(tmp_path / "labels_best.pt", **EVAL)
    whole = (tmp_path / "images_best.pt").read_bytes()
    for cut in (10, len(whole) // 2, len(whole) - 30):
        (tmp_path / "cut.pt").write_bytes(whole[:cut])
        with pytest.raises(ValueError, match="PyTorch file"):
            cafe_lab.evaluate(tmp_path / "cut.pt", **EVAL)
    (tmp_path / "noise.pt").write_bytes(os.urandom(4096))
    with pytest.raises(ValueError, match="PyTorch file"):
        cafe_lab.evaluate(tmp_path / "noise.pt", **EVAL)
    with pytest.raises(FileNotFoundError):
        cafe_lab.load(tmp_path / "absent.safetensors")


def test_progress_bars_draw_with_tqdm(condensed):
    pytest.importorskip("tqdm")
    r = cafe_lab.evaluate(condensed.images, condensed.labels, **{**EVAL, "progress": "bar"})
    assert r.accuracy["convnet"]["synthetic"] >= 0.0
