"""Which of torch's CPU libraries pick their kernels by instruction set, and does pinning work.

Run: python benchmarks/cpu_isa.py            (writes benchmarks/results/cpu_isa.json)
     python benchmarks/cpu_isa.py --digest   (one line: capability, digest, seconds; this env,
                                              pinned by houseprice if HOUSEPRICE_CPU_ISA is set)

Trains a tiny siamese ranker (shared conv encoder, linear pair head, Adam; 1 thread, seed 0)
in a fresh process per setting and hashes its weights. The net uses all three libraries torch
runs on a CPU: oneDNN (the convolutions), MKL (the linear layers' matrix products) and ATen's
own vectorised kernels (batch norm, pooling, the loss, the optimiser). Settings:

- ``native``: none of the variables set (each library uses the CPU's widest kernels);
- ``pinned``: houseprice's default (:data:`houseprice.runtime.CPU_ISA_PINS`, all three);
- ``only <VAR>``: one of the three pinned alone (on a CPU above AVX2, which ones it takes to
  reach ``pinned``'s bytes);
- ``<VAR> lowered``: one library alone held below AVX2 (on any CPU with AVX2: whether that
  library's choice of kernels reaches the weights at all).

``tests/test_cpu_isa.py`` compares ``pinned`` with :data:`PINNED_DIGEST` on CPUs above AVX2.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from houseprice.runtime import CPU_ISA_PINS, CPU_ISA_VAR, pin_cpu_isa

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PINS = CPU_ISA_PINS
LOWERED = {
    "ATEN_CPU_CAPABILITY": "default",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    "MKL_CBWR": "COMPATIBLE",
}
#: ``pinned``'s digest with torch :data:`DIGEST_TORCH` (made on an AVX2 machine; AVX-512 ones
#: pinned must give the same bytes).
PINNED_DIGEST = "d19b62db4fccbb49"
DIGEST_TORCH = "2.14.1"


def tiny_siamese_digest() -> tuple[str, str, float]:
    """Train the tiny siamese ranker here; (torch CPU capability, weights digest, seconds)."""
    import torch
    from torch import nn

    torch.set_num_threads(1)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    tiles, value = torch.rand(96, 3, 32, 32, generator=g), torch.rand(96, generator=g)
    encoder = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 16), nn.ReLU(),
    )  # fmt: skip
    head = nn.Linear(16, 2)  # which of the pair is worth more
    params = [*encoder.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=1e-2)
    t0 = time.perf_counter()
    for _ in range(30):
        i, j = torch.randint(0, 96, (2, 32), generator=g)
        logits = head(encoder(tiles[i]) - encoder(tiles[j]))
        loss = nn.functional.cross_entropy(logits, (value[i] > value[j]).long())
        opt.zero_grad()
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - t0
    h = hashlib.sha256()
    for p in params:
        h.update(p.detach().numpy().tobytes())
    return str(torch.backends.cpu.get_cpu_capability()), h.hexdigest()[:16], seconds


def run_setting(env_vars: dict[str, str]) -> dict[str, object]:
    """The digest in a fresh process whose only CPU-kernel variables are ``env_vars``."""
    env = {k: v for k, v in os.environ.items() if k not in PINS and k != CPU_ISA_VAR}
    env.update(env_vars, OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, __file__, "--digest"], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return {"env": env_vars, "cpu_capability": out[0], "digest": out[1], "seconds": float(out[2])}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--digest", action="store_true", help="print this process's digest only")
    ap.add_argument("--out", type=Path, default=RESULTS / "cpu_isa.json")
    args = ap.parse_args()
    if args.digest:
        if CPU_ISA_VAR in os.environ:
            pin_cpu_isa()  # before torch loads, as the CLI does
        capability, digest, seconds = tiny_siamese_digest()
        print(capability, digest, f"{seconds:.3f}")
        return
    import torch

    settings = {"native": {}, "pinned": PINS}
    settings.update({f"only {k}": {k: v} for k, v in PINS.items()})
    settings.update({f"{k} lowered": {k: v} for k, v in LOWERED.items()})
    runs = {name: run_setting(env) for name, env in settings.items()}
    pinned = runs["pinned"]["digest"]
    result = {
        "command": "python benchmarks/cpu_isa.py",
        "cpu": cpu_name(),
        "torch": torch.__version__,
        "native_cpu_capability": runs["native"]["cpu_capability"],
        "runs": runs,
        "same_as_pinned": {k: r["digest"] == pinned for k, r in runs.items()},
        "same_as_native": {k: r["digest"] == runs["native"]["digest"] for k, r in runs.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result["same_as_native"], indent=2))


if __name__ == "__main__":
    main()
