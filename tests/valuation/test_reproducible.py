"""Same command, same bytes: training is deterministic, and never reads the generator's truth."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd

from houseprice.jobs import predict, train


def digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_training_twice_gives_byte_identical_models_and_predictions(
    city_model: Path, tiny_city: Path, tmp_path: Path
) -> None:
    again, _ = train(tiny_city, tmp_path / "again", profile="quick", progress=False)
    assert digests(again) == digests(city_model)
    a, _, _ = predict(city_model, tiny_city / "houses.csv", tmp_path / "a.csv", progress=False)
    b, _, _ = predict(again, tiny_city / "houses.csv", tmp_path / "b.csv", progress=False)
    assert a.read_bytes() == b.read_bytes()
    assert len(pd.read_csv(a)) == len(pd.read_csv(tiny_city / "houses.csv"))


def test_truth_and_masks_never_reach_training(
    city_model: Path, tiny_city: Path, tmp_path: Path
) -> None:
    """Leakage guard: without truth/ and masks/ the trained model is byte-identical."""
    blind = tmp_path / "city"
    shutil.copytree(tiny_city, blind)
    shutil.rmtree(blind / "truth")
    shutil.rmtree(blind / "masks")
    model, _ = train(blind, tmp_path / "blind_model", profile="quick", progress=False)
    assert digests(model) == digests(city_model)
