"""Data-parallel siamese training (2 CPU ranks, gloo) follows the one-process trajectory.

Two processes (``torch.multiprocessing.spawn``, file-store rendezvous, so no port to pick)
train a tiny net on a tiny synthetic set with the same global batch as one process: the
first step's gradients and BatchNorm statistics, the per-epoch losses (mean over steps), the
held-out metrics and the final weights must agree within float32 round-off (the reductions
run in another order), far closer than a one-process run with another global batch. The
launcher (``houseprice.jobs.launch``) is checked by running a probe module under torchrun.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from houseprice.errors import UserInputError
from houseprice.vision.backbones import BackboneConfig
from houseprice.vision.siamese import (
    RankSiamese,
    SiameseConfig,
    SiameseTrainConfig,
    encode_batch,
    fit_siamese,
    pair_loss,
)
from houseprice.vision.siamese.distributed import current, sync_batchnorm

ARCH = SiameseConfig(backbone=BackboneConfig(widths=(8, 16, 16)), image_size=16)
# 36 tiles: 5 held out, 31 trained in global batches of 11 + 11 + 9 (uneven shards 6/5, 5/4);
# matched partners make batch sizes vary further.
TRAINING = SiameseTrainConfig(
    epochs=3, batch_size=11, lr=1e-2, patience=10, local_fraction=0.25, local_k=3
)
# Tolerances. One step: the averaged gradient equals the one-process gradient up to float32
# round-off (measured 1.6e-7 of the largest gradient; running statistics 2.2e-6). Trajectory:
# AdamW turns round-off on near-zero gradient entries into ±lr steps, so gaps grow with the
# steps (measured over 3 epochs: epoch-0 loss 3.4e-6, any epoch's loss 2.7e-4 relative,
# weights 1.6e-3); a run with another global batch is off by 0.3-0.8 in loss, 1.8 in weights.
# The one-step check is the one that sees a wrong gradient *scale*: AdamW is scale-invariant.
GRAD_RTOL = 1e-5  # first step: max |Δgrad| / max |grad|
STATS_RTOL = 1e-5  # first step: each BatchNorm running statistic, max |Δ| / max |value|
FIRST_EPOCH_RTOL = 1e-4  # epoch-0 train/val loss, relative
LOSS_RTOL = 1e-2  # every epoch's train/val loss, relative
WEIGHT_ATOL = 2e-2  # final float weights (embed.bias excluded, see max_gaps)


def synthetic(n: int = 36, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tiles ``(n, 16, 16, 3)``: a bright centre square raises the target; plus a match key."""
    rng = np.random.default_rng(seed)
    tiles = rng.integers(0, 120, size=(n, 16, 16, 3), dtype=np.uint8)
    bright = rng.uniform(0, 1, n)
    tiles[:, 5:11, 5:11, 2] = (bright * 255).astype(np.uint8)[:, None, None]
    target = bright + rng.normal(0, 0.05, n)
    return tiles, target, rng.normal(size=(n, 2))


def fit(training: SiameseTrainConfig = TRAINING) -> tuple[list[dict[str, float]], dict]:
    tiles, target, match = synthetic()
    res = fit_siamese(tiles, target, config=ARCH, training=training, match=match, seed=3)
    return res.history, res.model.state_dict()


def first_step() -> dict[str, torch.Tensor]:
    """Gradients (after the rank average) and BatchNorm running statistics of one training
    step on the first global batch."""
    tiles, target, _ = synthetic()
    torch.manual_seed(1)
    model = RankSiamese(ARCH).train()
    ranks, idx = current(), np.arange(TRAINING.batch_size)
    with contextlib.nullcontext() if ranks is None else sync_batchnorm(model):
        gen = torch.Generator().manual_seed(2)
        feats = encode_batch(model, torch.from_numpy(tiles), idx, TRAINING, gen, "cpu", ranks)
        t = torch.from_numpy(target[idx]).float()
        pair_loss(model, feats, t, TRAINING.tie_margin)[0].backward()
        if ranks is not None:
            ranks.average_gradients(list(model.parameters()))
    out = {k: p.grad.detach().clone() for k, p in model.named_parameters() if p.grad is not None}
    return out | {k: b.clone() for k, b in model.named_buffers() if "running" in k}


def _worker(rank: int, world: int, folder: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{folder}/store", rank=rank, world_size=world
    )
    try:
        grads = first_step()
        history, state = fit()
        out = {"history": history, "state": state, "grads": grads}
        torch.save(out, f"{folder}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    folder = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(2, str(folder)), nprocs=2, join=True)
    return [torch.load(folder / f"rank{r}.pt", weights_only=True) for r in range(2)]


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def one_process() -> tuple[list[dict[str, float]], dict]:
    with one_thread():
        return fit()


def max_gaps(
    a: tuple[list[dict[str, float]], dict], b: tuple[list[dict[str, float]], dict], epochs: int = 0
) -> tuple[float, float]:
    """Largest relative loss gap over the first ``epochs`` (0: all), largest weight gap.

    Weights: float tensors except ``embed.bias``, which the loss cannot see (the pair head
    takes f(x_i) − f(x_j), so the bias cancels): its gradient is pure round-off, which AdamW
    turns into ±lr steps. Integer buffers (BatchNorm step counts) are compared elsewhere.
    """
    assert len(a[0]) == len(b[0])
    pairs = list(zip(a[0], b[0], strict=True))[: epochs or None]
    keys = ("train_loss", "val_loss")
    loss = max(abs(x[k] - y[k]) / abs(y[k]) for x, y in pairs for k in keys)
    weights = max(
        float((v - b[1][k]).abs().max())
        for k, v in a[1].items()
        if v.is_floating_point() and k != "embed.bias"
    )
    return loss, weights


def test_first_step_gradient_equals_the_one_process_gradient(two_ranks: list[dict]) -> None:
    """Shard features gathered with gradients, averaged over ranks: ∂L/∂θ of one process;
    BatchNorm running statistics over the global batch, as in one process."""
    with one_thread():
        ref = first_step()
    grads = [k for k in ref if "running" not in k]
    scale = max(float(ref[k].abs().max()) for k in grads)
    for r in two_ranks:
        assert r["grads"].keys() == ref.keys()
        gap = max(float((r["grads"][k] - ref[k]).abs().max()) for k in grads)
        print(f"first-step gradient gap {gap / scale:.1e} of the largest gradient")
        assert gap < GRAD_RTOL * scale, (gap, scale)
        stats = {
            k: float((r["grads"][k] - ref[k]).abs().max() / ref[k].abs().max())
            for k in set(ref) - set(grads)
        }
        print(f"first-step running statistics gap {max(stats.values()):.1e} (relative)")
        assert max(stats.values()) < STATS_RTOL, stats


def test_two_ranks_follow_the_one_process_trajectory(
    two_ranks: list[dict], one_process: tuple[list[dict[str, float]], dict]
) -> None:
    r0, r1 = two_ranks
    assert r0["history"] == r1["history"]  # early stopping decided identically
    for k, v in r0["state"].items():
        assert torch.equal(v, r1["state"][k]), k  # every rank ends with the same model
    ours = (r0["history"], r0["state"])
    first, _ = max_gaps(ours, one_process, epochs=1)
    loss_gap, weight_gap = max_gaps(ours, one_process)
    print(f"2 ranks vs 1: epoch-0 loss {first:.1e}, loss {loss_gap:.1e}, weights {weight_gap:.1e}")
    assert first < FIRST_EPOCH_RTOL, first
    for k, v in r0["state"].items():
        if not v.is_floating_point():  # BatchNorm step counts: the same steps were taken
            assert torch.equal(v, one_process[1][k]), k
    assert loss_gap < LOSS_RTOL and weight_gap < WEIGHT_ATOL, (loss_gap, weight_gap)
    accuracy = [[h["val_pair_accuracy"] for h in hist] for hist in (r0["history"], one_process[0])]
    assert accuracy[0] == accuracy[1]


def test_tolerance_separates_another_global_batch(
    one_process: tuple[list[dict[str, float]], dict],
) -> None:
    """A run that only saw one shard's pairs (global batch 6) is far outside the tolerance."""
    with one_thread():
        other = fit(dataclasses.replace(TRAINING, batch_size=6))
    first, _ = max_gaps(other, one_process, epochs=1)
    loss_gap, weight_gap = max_gaps(other, one_process)
    print(f"batch 6 vs 11: epoch-0 loss {first:.1e}, loss {loss_gap:.1e}, weights {weight_gap:.1e}")
    assert first > 10 * FIRST_EPOCH_RTOL and loss_gap > 10 * LOSS_RTOL
    assert weight_gap > 5 * WEIGHT_ATOL


def test_without_a_process_group_nothing_is_distributed() -> None:
    assert not dist.is_initialized() and current() is None
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
    with sync_batchnorm(net):
        assert type(net[1]).__name__ == "SyncBatchNorm2d"
        assert net[1].weight is not None
    assert type(net[1]) is torch.nn.BatchNorm2d  # restored, same state


def test_torchrun_command_reruns_the_cli_without_nproc() -> None:
    from houseprice.jobs.launch import torchrun_command  # (jobs: not imported by the workers)

    argv = ["--threads", "1", "train", "--nproc", "2", "--data", "d", "--nproc=3", "--out", "o"]
    cmd = torchrun_command(argv, 2, python="py")
    assert cmd == [
        "py", "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "cli.main", "--threads", "1", "train", "--data", "d", "--out", "o",
    ]  # fmt: skip
    with pytest.raises(UserInputError, match="--nproc"):
        torchrun_command(argv, 0)


def test_relaunch_refuses_inside_a_torchrun_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    from houseprice.jobs.launch import init_ranks, is_main_process, relaunch

    assert init_ranks("cpu") == (0, 1) and is_main_process()  # outside torchrun: no group
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert not is_main_process()  # a worker of rank 1 (e.g. after its group has ended)
    with pytest.raises(UserInputError, match="inside a torchrun worker"):
        relaunch(2, ["train"])


# A torchrun worker: joins the env:// group as the train job does (init_ranks → init_from_env;
# houseprice.jobs itself is not imported, it would cost each worker seconds of imports).
PROBE = """
import sys, torch, torch.distributed as dist
from houseprice.vision.siamese.distributed import init_from_env
ranks = init_from_env("cpu")
t = torch.tensor([float(ranks.rank + 1)])
dist.all_reduce(t)
out = f"{ranks.world_size} {t.item()} {ranks.is_main} {dist.get_backend()}"
open(sys.argv[-1] + f"/rank{ranks.rank}.txt", "w").write(out)
dist.destroy_process_group()  # = houseprice.jobs.launch.finish_ranks
"""


def test_relaunch_runs_the_module_on_n_ranks_in_one_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from houseprice.jobs.launch import relaunch

    (tmp_path / "hp_probe.py").write_text(PROBE)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), *sys.path]))
    assert relaunch(2, ["--nproc", "2", str(tmp_path)], module="hp_probe") == 0
    got = [(tmp_path / f"rank{r}.txt").read_text() for r in range(2)]
    assert got == ["2 3.0 True gloo", "2 3.0 False gloo"]  # one group of 2; rank 0 is main
