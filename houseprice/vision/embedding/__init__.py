"""Embedding nets for deep metric learning: model, losses, sampler, training, metrics, io.

``model`` (the net), ``losses`` (semi-hard / batch-hard triplet, N-pair, normalised softmax),
``sampler`` (P x K batches), ``train`` (config, warmup + cosine schedule, epochs, evaluation),
``metrics`` (Recall@K, NMI) and ``io`` (save/load); every public name is re-exported here.
"""

from __future__ import annotations

import torch.nn.functional as F

from houseprice.vision.embedding.io import (
    CONFIG_FILE,
    FORMAT,
    FORMAT_VERSION,
    WEIGHTS_FILE,
    load_embedding_net,
    save_embedding_net,
)
from houseprice.vision.embedding.losses import (
    LOSSES,
    MININGS,
    LossName,
    normsoftmax_loss,
    npair_batch_loss,
    npair_loss,
    pairwise_sq_distances,
    semihard_triplets,
    triplet_batch_hard_loss,
    triplet_semihard_loss,
)
from houseprice.vision.embedding.metrics import (
    nmi_kmeans,
    recall_at_k,
    recall_hits,
    retrieval_metrics,
)
from houseprice.vision.embedding.model import EmbeddingNet, RawEmbedding, build_embedding_net
from houseprice.vision.embedding.sampler import PKBatchSampler
from houseprice.vision.embedding.train import (
    ClassProxies,
    EmbeddingTrainConfig,
    batch_loss,
    embed_dataset,
    evaluate,
    lr_factor,
    train_embedding,
    train_one_epoch,
)

__all__ = [
    "CONFIG_FILE",
    "FORMAT",
    "FORMAT_VERSION",
    "LOSSES",
    "MININGS",
    "WEIGHTS_FILE",
    "ClassProxies",
    "EmbeddingNet",
    "EmbeddingTrainConfig",
    "F",
    "LossName",
    "PKBatchSampler",
    "RawEmbedding",
    "batch_loss",
    "build_embedding_net",
    "embed_dataset",
    "evaluate",
    "load_embedding_net",
    "lr_factor",
    "nmi_kmeans",
    "normsoftmax_loss",
    "npair_batch_loss",
    "npair_loss",
    "pairwise_sq_distances",
    "recall_at_k",
    "recall_hits",
    "retrieval_metrics",
    "save_embedding_net",
    "semihard_triplets",
    "train_embedding",
    "train_one_epoch",
    "triplet_batch_hard_loss",
    "triplet_semihard_loss",
]
