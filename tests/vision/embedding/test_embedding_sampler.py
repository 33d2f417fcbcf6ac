"""The P x K sampler: class-balanced, never a class without a positive, deterministic."""

from __future__ import annotations

import numpy as np

from houseprice.vision.embedding import PKBatchSampler


def test_pk_sampler_batches_are_class_balanced_and_deterministic() -> None:
    labels = np.repeat(np.arange(6), [5, 5, 5, 2, 1, 5])  # class 4 has a single image
    sampler = PKBatchSampler(labels, 3, 4, n_batches=5, seed=7)
    batches = list(sampler)
    assert len(batches) == 5
    for batch in batches:
        assert len(batch) == 12
        classes = labels[batch].reshape(3, 4)
        assert (classes == classes[:, :1]).all()  # K of one class, consecutive
        assert len(set(classes[:, 0].tolist())) == 3  # P distinct classes
        assert 4 not in classes  # never a class without a positive
    assert batches == list(PKBatchSampler(labels, 3, 4, n_batches=5, seed=7))
    sampler.set_epoch(1)
    assert list(sampler) != batches
