"""houseprice.runtime: the allocator settings that keep repeated forward passes off the kernel."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Eight forward passes of a small conv stack over 256 tiles (its first activation is 33.5 MB,
# as in the siamese stem); prints the minor page faults of the last six, in this thread.
# With glibc's defaults every pass maps its big blocks afresh and faults in ~57,000 pages;
# tuned, the heap keeps them (a rare pass still grows it: 8-16k faults, hence the margin).
FORWARD = """
import resource, sys, torch
from houseprice.runtime import tune_allocator
tuned = tune_allocator() if sys.argv[1] == "tuned" else None
torch.set_num_threads(1)
net = torch.nn.Sequential(
    torch.nn.Conv2d(3, 32, 3, stride=2, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(),
    torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.AdaptiveAvgPool2d(1),
).eval()
x = torch.rand(256, 3, 64, 64)
faults = []
with torch.no_grad():
    for _ in range(8):
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        net(x)
        faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)
print(tuned, sum(faults[2:]), faults)
"""


def forward_faults(mode: str) -> tuple[str, int, str]:
    """(tune_allocator's answer, faults of the last six passes, what the script printed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}  # glibc's defaults
    done = subprocess.run(
        [sys.executable, "-c", FORWARD, mode], capture_output=True, text=True, check=True, env=env
    )
    tuned, faults, _ = done.stdout.split(maxsplit=2)
    return tuned, int(faults), done.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_tuned_allocator_reuses_activation_memory_instead_of_faulting_it_in_again() -> None:
    _, default, _ = forward_faults("default")
    tuned, faults, printed = forward_faults("tuned")
    assert tuned == "True"
    assert default > 300_000  # the control: glibc's defaults fault every pass's blocks in again
    assert faults < 30_000, printed
