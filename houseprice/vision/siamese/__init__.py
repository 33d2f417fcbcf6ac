"""The rank-siamese net (Chen et al. 2020, §4.2): model and training loop."""

from __future__ import annotations

from houseprice.vision.siamese.model import (
    F,
    FitResult,
    RadialGate,
    RankSiamese,
    SiameseConfig,
    batch_pairs,
    dihedral_augment,
    evaluate,
    extract_features,
    fit_normalisation,
    fit_siamese,
    held_out_pairs,
    make_batches,
    pair_loss,
    train_one_epoch,
)

__all__ = [
    "F",
    "FitResult",
    "RadialGate",
    "RankSiamese",
    "SiameseConfig",
    "batch_pairs",
    "dihedral_augment",
    "evaluate",
    "extract_features",
    "fit_normalisation",
    "fit_siamese",
    "held_out_pairs",
    "make_batches",
    "pair_loss",
    "train_one_epoch",
]
