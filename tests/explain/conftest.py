"""Fixtures for the explainer tests: one torch thread, tiny seeded networks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from explain_nets import PlantedNet, TwoRegionNet


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def planted_net() -> PlantedNet:
    return PlantedNet().eval()


@pytest.fixture
def two_region_net() -> TwoRegionNet:
    return TwoRegionNet().eval()
