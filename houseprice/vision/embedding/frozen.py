"""Training only the head of an embedding net whose backbone is frozen, on cached features.

With every backbone parameter frozen (``BackboneConfig.freeze == -1``) the pooled backbone
features of an image do not change during training, so :class:`CachedFeatureBatches` computes
them once for ``feature_views`` augmented views of every training image (the batched
augmentation of :class:`~houseprice.data.cub.DecodedImages`) and serves P x K batches of
``{"pooled": (B, C), "label": (B,)}``, each sample one of its views drawn at random. Training
then costs one forward pass per view instead of one per sample and epoch.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from houseprice.data.cub import CUBAugConfig, DecodedImages
from houseprice.vision.embedding.model import EmbeddingNet, pool_features
from houseprice.vision.embedding.sampler import PKBatchSampler


@torch.no_grad()
def pooled_views(
    model: EmbeddingNet,
    data: DecodedImages,
    aug: CUBAugConfig | None,
    views: int,
    *,
    batch_size: int,
    generator: torch.Generator,
    device: str | torch.device = "cpu",
) -> Tensor:
    """``(views, N, C)`` pooled backbone features of ``views`` augmented views per image (the
    first view is the plain image when ``aug`` is None)."""
    was = model.training
    model.eval()
    out = []
    try:
        for _ in range(views):
            rows = []
            for start in range(0, len(data), batch_size):
                idx = list(range(start, min(start + batch_size, len(data))))
                images, _ = data.batch(idx, aug, generator)
                fmap = model.forward_features(images.to(device))
                rows.append(pool_features(fmap, model.pooling).float())
            out.append(torch.cat(rows))
    finally:
        model.train(was)
    return torch.stack(out)


class CachedFeatureBatches:
    """P x K batches of cached pooled features (one random view per sample)."""

    def __init__(
        self,
        model: EmbeddingNet,
        data: DecodedImages,
        sampler: PKBatchSampler,
        aug: CUBAugConfig | None,
        *,
        views: int,
        batch_size: int,
        seed: int,
        device: str | torch.device = "cpu",
    ) -> None:
        if any(p.requires_grad for p in model.backbone.parameters()):
            raise ValueError("cached features need a fully frozen backbone (freeze -1)")
        self.generator = torch.Generator().manual_seed(seed)
        self.features = pooled_views(
            model,
            data,
            aug,
            views,
            batch_size=batch_size,
            generator=self.generator,
            device=device,
        )  # (V, N, C)
        self.labels = torch.from_numpy(data.labels)
        self.sampler = sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        views = self.features.shape[0]
        for indices in self.sampler:
            idx = torch.as_tensor(indices, dtype=torch.long)
            pick = torch.randint(views, (len(indices),), generator=self.generator)
            yield {"pooled": self.features[pick, idx], "label": self.labels[idx]}
