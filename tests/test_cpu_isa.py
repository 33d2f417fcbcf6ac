"""The CPU instruction set of torch's kernels: pinned to AVX2 by default (houseprice.runtime).

The CLI pins before torch loads, in its own process and in the processes it starts; a model
records the setting; evaluate notes a model trained with other kernels. On a CPU above AVX2 a
tiny siamese net trained pinned must give the bytes committed from an AVX2 machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from houseprice.runtime import CPU_ISA_PINS, CPU_ISA_VAR, cpu_isa

ROOT = Path(__file__).resolve().parents[1]
KERNEL_VARS = (*CPU_ISA_PINS, CPU_ISA_VAR)
# What the console script does (``from cli.main import main``), then what torch reports.
PROBE = (
    "import sys; sys.argv = ['houseprice', *sys.argv[1:]]\n"
    "import os, cli.main, torch\n"
    "print(torch.backends.cpu.get_cpu_capability(), os.environ['HOUSEPRICE_CPU_ISA'],"
    " *[os.environ.get(k, '-') for k in ('ATEN_CPU_CAPABILITY', 'ONEDNN_MAX_CPU_ISA',"
    " 'MKL_CBWR')])\n"
)
CAPABILITY = "import torch; print(torch.backends.cpu.get_cpu_capability())"


def python(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python ARGS`` from the repository, without this process's kernel variables."""
    base = {k: v for k, v in os.environ.items() if k not in KERNEL_VARS}
    return subprocess.run(
        [sys.executable, *args],
        env={**base, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


@pytest.fixture(scope="module")
def native_capability() -> str:
    """What torch picks on this CPU with none of the variables set."""
    return python("-c", CAPABILITY).stdout.strip()


def has_avx2() -> bool:
    from houseprice.runtime import _has_avx2

    return _has_avx2()


# A user's own (lower) setting in the environment: pinning must replace it before torch reads
# it, and native must clear it, else torch reports DEFAULT (and MKL runs its SSE2 kernels).
HOSTILE = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}


@pytest.mark.skipif(not has_avx2(), reason="pinning needs an x86-64 CPU with AVX2")
@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ([], {}, "avx2"),
        (["--cpu-isa", "native"], {}, "native"),
        (["--cpu-isa=native"], {}, "native"),
        ([], {CPU_ISA_VAR: "native"}, "native"),
        (["--cpu-isa", "avx2"], {CPU_ISA_VAR: "native"}, "avx2"),  # the option wins
    ],
)
def test_cli_pins_torchs_kernels_before_torch_starts(
    args: list[str], env: dict[str, str], expected: str, native_capability: str
) -> None:
    done = python("-c", PROBE, *args, "--help", env={**HOSTILE, **env})
    assert done.returncode == 0, done.stderr
    capability, setting, *pins = done.stdout.split()
    assert setting == expected
    if expected == "avx2":
        assert capability == "AVX2"
        assert pins == list(CPU_ISA_PINS.values())
    else:
        assert capability == native_capability != "DEFAULT"
        assert pins == ["-", "-", "-"]


def test_bad_cpu_isa_is_a_user_error() -> None:
    for args, env in ((["--cpu-isa", "sse4"], {}), ([], {CPU_ISA_VAR: "avx512"})):
        done = python("-m", "cli.main", *args, "data", "validate", "--help", env=env)
        assert done.returncode == 2, done.stderr
        assert "Invalid value for '--cpu-isa'" in done.stderr and "avx2" in done.stderr


@pytest.mark.skipif(not has_avx2(), reason="pinning needs an x86-64 CPU with AVX2")
def test_pinning_after_torch_chose_its_kernels_is_refused() -> None:
    code = (
        "import torch; torch.ones(2) + 1\n"
        "from houseprice.runtime import pin_cpu_isa\n"
        "try:\n    pin_cpu_isa('avx2')\nexcept RuntimeError as e:\n    print('refused:', e)\n"
    )
    done = python("-c", code, env={"ATEN_CPU_CAPABILITY": "default"})
    assert "refused: pin_cpu_isa('avx2') came after torch chose its DEFAULT kernels" in (
        done.stdout
    ), done.stdout + done.stderr


def test_local_cluster_workers_run_this_processs_kernels() -> None:
    pytest.importorskip("distributed")
    import torch

    from houseprice.jobs.engines import dask_client

    def kernels() -> tuple[str, dict[str, str | None]]:
        import torch

        return str(torch.backends.cpu.get_cpu_capability()), {
            k: os.environ.get(k) for k in KERNEL_VARS
        }

    here = (
        str(torch.backends.cpu.get_cpu_capability()),
        {k: os.environ.get(k) for k in KERNEL_VARS},
    )
    with dask_client(None, 1) as client:
        worker = client.submit(kernels, pure=False).result()
    assert worker == here
    if has_avx2():
        assert here[1][CPU_ISA_VAR] == "avx2" and here[0] == "AVX2"  # conftest's pin_cpu_isa()


def test_model_records_its_kernels_and_evaluate_notes_others_once(
    city_model: Path, tiny_city: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from cli.main import app
    from houseprice.valuation import folder

    versions = json.loads((city_model / "model.json").read_text())["versions"]
    assert versions["cpu_isa"] == cpu_isa() == ("avx2" if has_avx2() else "native")
    assert versions["cpu_capability"] == str(torch.backends.cpu.get_cpu_capability())
    assert folder.kernel_note(city_model) is None
    monkeypatch.setattr(folder, "cpu_isa", lambda: "native")  # as if run with --cpu-isa native
    argv = ["evaluate", "--model", city_model, "--data", tiny_city, "--out", tmp_path / "r"]
    res = CliRunner().invoke(app, [*map(str, argv), "--quiet"])
    assert res.exit_code == 0, res.output
    assert res.output.count("may differ from the training machine's in the last digits") == 1
    assert f"--cpu-isa {versions['cpu_isa']}" in res.output


# ---------------------------------------------------------------- the same bytes above AVX2
def tiny_siamese(setting: str) -> tuple[str, str]:
    """(capability, weights digest) of benchmarks/cpu_isa.py's tiny net, pinned by houseprice."""
    done = python("benchmarks/cpu_isa.py", "--digest", env={CPU_ISA_VAR: setting})
    assert done.returncode == 0, done.stderr
    capability, digest, _ = done.stdout.split()
    return capability, digest


def test_pinned_tiny_siamese_gives_the_committed_bytes_on_a_cpu_above_avx2(
    native_capability: str,
) -> None:
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from cpu_isa import DIGEST_TORCH, PINNED_DIGEST
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    if not has_avx2() or native_capability in ("DEFAULT", "AVX2"):
        pytest.skip(
            f"this CPU's widest torch kernels are {native_capability}: pinned and native run "
            "the same AVX2 kernels here (nothing above AVX2 to pin down)"
        )
    if torch.__version__.split("+")[0] != DIGEST_TORCH:
        pytest.skip(f"the committed digest is for torch {DIGEST_TORCH}, not {torch.__version__}")
    native = tiny_siamese("native")
    pinned = tiny_siamese("avx2")
    assert pinned == ("AVX2", PINNED_DIGEST), f"native {native}, pinned {pinned}"
