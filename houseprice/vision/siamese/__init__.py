"""The rank-siamese net (Chen et al. 2020, §4.2): ``model`` (architecture), ``pairs``
(augmentation, in-batch pairs, rank loss), ``train`` and
``distributed`` (data-parallel training over a ``torch.distributed`` process group)."""

from __future__ import annotations

import torch.nn.functional as F

from houseprice.vision.siamese.model import (
    POOLINGS,
    RadialGate,
    RankSiamese,
    SiameseConfig,
    fit_normalisation,
)
from houseprice.vision.siamese.pairs import (
    apply_dihedral,
    batch_pairs,
    dihedral_augment,
    dihedral_draws,
    pair_loss,
)
from houseprice.vision.siamese.train import (
    FitResult,
    SiameseTrainConfig,
    check_configs,
    encode_batch,
    evaluate,
    extract_features,
    fit_siamese,
    held_out_pairs,
    make_batches,
    train_one_epoch,
)

__all__ = [
    "POOLINGS",
    "F",
    "FitResult",
    "RadialGate",
    "RankSiamese",
    "SiameseConfig",
    "SiameseTrainConfig",
    "apply_dihedral",
    "batch_pairs",
    "check_configs",
    "dihedral_augment",
    "dihedral_draws",
    "encode_batch",
    "evaluate",
    "extract_features",
    "fit_normalisation",
    "fit_siamese",
    "held_out_pairs",
    "make_batches",
    "pair_loss",
    "train_one_epoch",
]
