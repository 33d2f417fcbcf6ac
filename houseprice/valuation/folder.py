"""The model folder on disk: written atomically, read only after every check has passed.

Layout (format ``houseprice-model``, version 2)::

    manifest.json               format, version, SHA-256 of every file below (artifacts.py)
    model.json                  config, attribute set, feature names, train ids, info
    regressor_no_visual.txt     LightGBM text: attributes only (fallback)
    regressor.txt               LightGBM text: attributes + visual features   (with tiles)
    siamese.safetensors         the cross-fitted nets, alignments, OOF train features
    gradweights.safetensors/.json  the explanation database (houseprice.valuation.gradweights)
    calibration.json            price-range calibration (houseprice.valuation.calibration);
                                optional: folders saved before it are calibrated by
                                `houseprice calibrate`

Loading trusts nothing: the manifest must list exactly the required files with matching
digests (names confined to the folder), ``model.json`` must match :data:`MODEL_JSON_SCHEMA`
(unknown keys refused), the configs must rebuild, the LightGBM texts must pass
:func:`houseprice.pricing.lgbm_text.check_model_text` before LightGBM parses them, and the
tensors must fit the configured nets. Every failure is a :class:`FormatError` naming the file.
No pickle is ever involved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from houseprice import __version__
from houseprice.artifacts import (
    atomic_directory,
    atomic_write_bytes,
    atomic_write_json,
    read_json_object,
    read_manifest,
    sha256_file,
    write_manifest,
)
from houseprice.errors import FormatError
from houseprice.pricing.lgbm_text import check_model_text
from houseprice.pricing.regressor import PriceRegressor
from houseprice.runtime import cpu_isa
from houseprice.valuation.calibration import CALIBRATION_FILE, PriceCalibration
from houseprice.valuation.config import TrainConfig
from houseprice.vision.features import VisualFeaturizer

MODEL_FORMAT = "houseprice-model"
MODEL_FORMAT_VERSION = 2  # 2: manifest.json; config.siamese (architecture) + .siamese_training
HINT = "create one with `houseprice train` (older model folders must be retrained)"

_STR_LIST = {"type": "array", "items": {"type": "string"}}
MODEL_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "format",
        "format_version",
        "versions",
        "config",
        "attributes",
        "feature_names",
        "tile_px",
        "tile_meters",
        "n_visual_models",
        "train_ids",
        "info",
    ],
    "properties": {
        "format": {"const": MODEL_FORMAT},
        "format_version": {"const": MODEL_FORMAT_VERSION},
        "versions": {"type": "object", "additionalProperties": {"type": "string"}},
        "config": {"type": "object"},
        "attributes": _STR_LIST,
        "feature_names": {
            "type": "object",
            "additionalProperties": False,
            "required": ["no_visual", "visual"],
            "properties": {"no_visual": _STR_LIST, "visual": _STR_LIST},
        },
        "tile_px": {"type": ["integer", "null"], "minimum": 1},
        "tile_meters": {"type": ["number", "null"], "exclusiveMinimum": 0},
        "n_visual_models": {"type": "integer", "minimum": 0, "maximum": 64},
        "train_ids": _STR_LIST,
        "info": {"type": "object"},
    },
}


def _versions() -> dict[str, str]:
    """Library versions and the CPU kernels the model was trained with.

    The siamese stage is byte-reproducible only with all of these equal (and the thread
    count, ``info.torch_threads``): torch picks its CPU kernels by instruction set
    (``cpu_capability``: AVX2, AVX512, ...), whose float rounding differs, unless
    ``--cpu-isa`` pins them (``cpu_isa``: avx2 by default, :func:`houseprice.runtime.
    pin_cpu_isa`; README, "Reproducibility").
    """
    import lightgbm
    import PIL
    import sklearn

    return {
        "houseprice": __version__,
        "torch": torch.__version__,
        "lightgbm": lightgbm.__version__,
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
        "cpu_isa": cpu_isa(),
    }


def kernel_note(folder: str | Path) -> str | None:
    """A note when this process's CPU kernels are not those the model in ``folder`` trained with.

    Such a model still works; its prices and heatmaps may differ from the training machine's
    in the last digits. Models from before ``cpu_isa`` was recorded count as ``native``.
    """
    meta = read_json_object(Path(folder) / "model.json", "model metadata")
    versions = meta.get("versions") or {}
    trained = (versions.get("cpu_capability", "not recorded"), versions.get("cpu_isa", "native"))
    here = (str(torch.backends.cpu.get_cpu_capability()), cpu_isa())
    if trained == here:
        return None
    return (
        f"{folder} was trained with torch's {trained[0]} CPU kernels (--cpu-isa {trained[1]}) "
        f"and runs here with {here[0]} ({here[1]}): results may differ from the training "
        "machine's in the last digits"
    )


@dataclass
class ModelParts:
    """What a model folder holds, as objects (``HousePriceModel`` is built from these)."""

    config: TrainConfig
    regressor_no_visual: PriceRegressor
    regressor: PriceRegressor | None = None
    featurizer: VisualFeaturizer | None = None
    train_features: np.ndarray | None = None  # (N_train, d)
    train_ids: list[str] = field(default_factory=list)
    tile_px: int | None = None
    tile_meters: float | None = None
    feature_names: dict[str, list[str]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    calibration: PriceCalibration | None = None


def _write_visual(parts: ModelParts, tmp: Path) -> list[str]:
    from safetensors.torch import save

    assert parts.featurizer is not None and parts.regressor is not None
    assert parts.train_features is not None
    tensors = parts.featurizer.state_tensors()
    tensors["train_features"] = torch.from_numpy(parts.train_features)
    # atomic_write_bytes: safetensors' save_file creates 0600 files; ours follow the umask
    atomic_write_bytes(tmp / "siamese.safetensors", save(tensors))
    parts.regressor.save_model(tmp / "regressor.txt")
    return ["siamese.safetensors", "regressor.txt"]


def save_model(
    parts: ModelParts,
    folder: str | Path,
    *,
    overwrite: bool = False,
    extra_writer: Callable[[Path], list[str]] | None = None,
    inputs: tuple[str | Path, ...] = (),
) -> Path:
    """Write the model folder atomically; ``extra_writer`` adds files (the grad-weight DB)."""
    folder = Path(folder)
    with atomic_directory(folder, overwrite=overwrite, kind=MODEL_FORMAT, inputs=inputs) as tmp:
        parts.regressor_no_visual.save_model(tmp / "regressor_no_visual.txt")
        files = ["regressor_no_visual.txt"]
        if parts.featurizer is not None and parts.regressor is not None:
            files += _write_visual(parts, tmp)
        if extra_writer is not None:
            files += extra_writer(tmp)
        if parts.calibration is not None:
            atomic_write_json(tmp / CALIBRATION_FILE, parts.calibration.to_json())
            files.append(CALIBRATION_FILE)
        info = dict(parts.info)
        info.pop("folder", None)  # where it was loaded from: not part of the model
        if parts.config.weights is not None:
            info["weights_sha256"] = sha256_file(parts.config.weights)
        meta = {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "versions": _versions(),
            "config": parts.config.to_dict(),
            "attributes": list(parts.config.attributes),
            "feature_names": parts.feature_names,
            "tile_px": parts.tile_px,
            "tile_meters": parts.tile_meters,
            "n_visual_models": len(parts.featurizer.models_) if parts.featurizer else 0,
            "train_ids": parts.train_ids,
            "info": info,
        }
        atomic_write_json(tmp / "model.json", meta)
        write_manifest(
            tmp, kind=MODEL_FORMAT, version=MODEL_FORMAT_VERSION, files=[*files, "model.json"]
        )
    return folder


def _read_meta(folder: Path) -> dict[str, Any]:
    import jsonschema

    read_manifest(
        folder,
        kind=MODEL_FORMAT,
        version=MODEL_FORMAT_VERSION,
        required=("model.json", "regressor_no_visual.txt"),
        hint=HINT,
    )
    meta = read_json_object(folder / "model.json", "model metadata")
    found = meta.get("format_version")
    if type(found) is not int or found != MODEL_FORMAT_VERSION:
        raise FormatError(
            f"{folder / 'model.json'}: format_version {found!r} is not supported (this "
            f"houseprice reads {MODEL_FORMAT_VERSION}); {HINT}"
        )
    errors = sorted(
        jsonschema.Draft202012Validator(MODEL_JSON_SCHEMA).iter_errors(meta),
        key=lambda e: list(e.path),
    )
    if errors:
        e = errors[0]
        where = "/".join(map(str, e.path)) or "(top level)"
        raise FormatError(f"{folder / 'model.json'}: {where}: {e.message}")
    return meta


def _load_regressor(path: Path, names: list[str], params: dict[str, Any]) -> PriceRegressor:
    try:
        check_model_text(path.read_text(encoding="utf-8"), len(names))
        return PriceRegressor.load_model(path, names, params=params)
    except (ValueError, UnicodeDecodeError) as e:
        raise FormatError(f"{path}: not a valid LightGBM model for this folder ({e})") from e
    except Exception as e:  # lightgbm.basic.LightGBMError and friends
        raise FormatError(f"{path}: LightGBM could not read it ({e})") from e


def _load_visual(
    folder: Path, meta: dict[str, Any], config: TrainConfig
) -> tuple[VisualFeaturizer, np.ndarray]:
    from safetensors.torch import load_file

    path = folder / "siamese.safetensors"
    try:
        tensors = load_file(str(path))
        feats = tensors.pop("train_features").numpy()
        featurizer = VisualFeaturizer.from_state_tensors(
            tensors,
            config=config.siamese,
            training=config.siamese_training,
            n_models=meta["n_visual_models"],
            n_folds=config.n_folds,
        )
    except (KeyError, RuntimeError, ValueError, OSError) as e:
        raise FormatError(
            f"{path}: the tensors do not fit the configured nets ({str(e).splitlines()[0][:300]})"
        ) from e
    if feats.shape != (len(meta["train_ids"]), config.siamese.feature_dim):
        raise FormatError(f"{path}: train_features shape {feats.shape} does not fit model.json")
    return featurizer, feats


def load_model(folder: str | Path) -> ModelParts:
    """Read a model folder after checking manifest, schema, configs, LightGBM texts, tensors."""
    folder = Path(folder)
    meta = _read_meta(folder)
    config = TrainConfig.from_dict(meta["config"])
    names = meta["feature_names"]
    params = config.build_regressor().get_params()
    parts = ModelParts(
        config=config,
        regressor_no_visual=_load_regressor(
            folder / "regressor_no_visual.txt", names["no_visual"], params
        ),
        train_ids=list(meta["train_ids"]),
        tile_px=meta["tile_px"],
        tile_meters=meta["tile_meters"],
        feature_names=names,
        info=dict(meta["info"]),
    )
    if meta["n_visual_models"]:
        manifest = read_json_object(folder / "manifest.json", "manifest")
        missing = {"siamese.safetensors", "regressor.txt"} - set(manifest["files"])
        if missing:
            raise FormatError(f"{folder}: a model with visual features lacks {sorted(missing)}")
        parts.featurizer, parts.train_features = _load_visual(folder, meta, config)
        parts.regressor = _load_regressor(folder / "regressor.txt", names["visual"], params)
    if CALIBRATION_FILE in read_json_object(folder / "manifest.json", "manifest")["files"]:
        path = folder / CALIBRATION_FILE
        parts.calibration = PriceCalibration.from_json(
            read_json_object(path, "price-range calibration"), path
        )
    parts.info["folder"] = str(folder)
    return parts
