"""The docs' profile table, rendered from the configs each profile really builds.

``python -m houseprice.jobs.profile_table`` prints it; README's "Profiles" section holds this
exact text between the ``profiles`` markers of :mod:`houseprice.jobs.docs` (a test checks).
"""

from __future__ import annotations

from houseprice.bench.profile import bench_profile
from houseprice.profiles import PROFILES
from houseprice.valuation.config import profile_config


def profile_table() -> str:
    """One markdown row per profile: city, siamese, regressor, birds and benchmark settings."""
    rows = [
        "| profile | demo city | siamese (backbone, px, epochs, lr) | trees / folds | "
        "birds (classes × images, px) | bench embedding (epochs, P×K) | purpose |",
        "|---|---:|---|---:|---|---|---|",
    ]
    for prof, spec in PROFILES.items():
        t = profile_config(prof.value)
        b = bench_profile(prof.value)
        e = b.train
        rows.append(
            f"| `{spec.name}` | {spec.city.houses:,} houses | {t.siamese.backbone.name}, "
            f"{t.siamese.image_size}, {t.siamese_training.epochs}, {t.siamese_training.lr:g} | "
            f"{t.regressor['n_estimators']} / {t.n_folds} | {b.synth_classes} × "
            f"{b.synth_images_per_class}, {b.synth_px} | {e.backbone.name}, {e.epochs}, "
            f"{e.classes_per_batch}×{e.images_per_class} | {spec.summary} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":  # pragma: no cover
    print(profile_table())
