"""The benchmark's method list, built from the explainer registry (:mod:`houseprice.explain`).

Every registered method that explains an embedding net with what the benchmark has (partner
samplers over the test split, class proxies, grad-weight databases, the net's head, class
labels) is run in each of its registered :class:`~houseprice.explain.Variant` s. Nothing here
names a method: adding an explainer is one file plus one ``register(...)`` call.

Partners of sampled methods come from the test split (Chen §4.1); the transfer databases hold
training-class images with training partners (Chen §3.3).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from houseprice.bench.batches import Batch
from houseprice.bench.profile import BenchProfile
from houseprice.explain import (
    Explainer,
    GradWeightDatabase,
    MethodSpec,
    TransferSource,
    TripletSampler,
    Variant,
    get_method,
    methods_for,
    report_order,
)

#: What the benchmark can give an explainer (see ``houseprice.explain.registry.Need``).
AVAILABLE = ("sampler", "proxies", "database", "head")


@dataclass
class Method:
    """A benchmark row: an explainer, its per-batch target and how the runner treats it."""

    name: str  # report key, e.g. "gradcam_top50"
    family: str  # registry name, e.g. "sampled_gradcam"
    explainer: Explainer
    target: Callable[[Batch], Any]
    sweep: bool = False  # the sensitivity over M is computed from its weights
    database: str | None = None  # transfer: the database it queries
    reruns: list[Explainer] = field(default_factory=list)  # other sampler seeds


@dataclass
class Resources:
    """What the explainers of one run are built from."""

    model: nn.Module  # the raw-embedding net
    layer: nn.Module  # the explained layer
    head: Callable[[Tensor], Tensor]  # layer output -> raw embedding (fast L2-CAF)
    n_channels: int  # C, the explained layer's channels
    top_m: int  # M, capped by C
    kmeans_k: int  # K, capped by the database size
    samplers: dict[str, TripletSampler]  # "all" (N_s valid triplets) and "single"
    proxies: tuple[Tensor, Tensor]  # test-class mean proxies (Bachhawat eq. 11-12)
    databases: dict[TransferSource, GradWeightDatabase] = field(default_factory=dict)
    extra_top_ms: tuple[int, ...] = ()  # more M for the top-M variants (the papers' fraction)

    @property
    def top_ms(self) -> tuple[int, ...]:
        """Every M the top-M variants run at, the primary one first."""
        return (self.top_m, *(m for m in self.extra_top_ms if m != self.top_m))


def paper_top_m(n_channels: int, fraction: float) -> int:
    """M at the papers' fraction of the channels: ``max(1, round(fraction * C))``; Chen §4.1
    keeps 50 of ResNet-50's 2,048 channels, ``fraction = 50 / 2048 = 0.024``."""
    return max(1, round(fraction * n_channels))


def triplet_samplers(
    emb: Tensor, labels: Tensor, prof: BenchProfile, seed: int
) -> dict[str, TripletSampler]:
    """``{"all": N_s valid triplets per anchor, "single": one}`` over a reference split."""

    def sampler(n: int) -> TripletSampler:
        n_candidates = max(prof.n_candidates, n)
        return TripletSampler(
            emb, labels, n_samples=n, margin=0.2, n_candidates=n_candidates, seed=seed
        )

    return {"all": sampler(prof.n_samples), "single": sampler(1)}


def bench_specs() -> tuple[MethodSpec, ...]:
    """Registered methods the benchmark can run, in report order (``report_rank``)."""
    return report_order(methods_for("embedding", have=AVAILABLE, labels=True))


def _target(spec: MethodSpec) -> Callable[[Batch], Any]:
    if spec.target == "none":
        return lambda batch: None
    return lambda batch: batch.labels  # class labels = the triplet sampler's anchors


def _build(
    spec: MethodSpec, variant: Variant, res: Resources, prof: BenchProfile, m: int | None = None
) -> Explainer | None:
    """The explainer of one variant, or ``None`` when a resource it needs is missing."""
    kw: dict[str, Any] = prof.method_options(spec.name)
    kw.update(variant.options)
    keywords = spec.keywords
    if "sampler" in keywords:
        kw["sampler"] = res.samplers[variant.partners or "all"]
    if "proxies" in keywords:
        kw["proxies"] = res.proxies
    if "head" in keywords:
        kw["head"] = res.head
    if "database" in keywords:
        database = res.databases.get(variant.transfer) if variant.transfer else None
        if database is None:
            return None
        kw["database"] = database
    if variant.top_m is not None:
        kw["top_m"] = (m or res.top_m) if variant.top_m else None
    return spec.factory(res.model, res.layer, **kw)


def transfer_sources(specs: tuple[MethodSpec, ...]) -> list[TransferSource]:
    """The databases the variants query, exact ones first per name, in order of appearance."""
    seen: dict[TransferSource, None] = {}
    for spec in specs:
        for variant in spec.variants:
            if variant.transfer is not None:
                seen[replace(variant.transfer, kmeans=False)] = None
    return list(seen)


def build_databases(
    specs: tuple[MethodSpec, ...],
    res: Resources,
    train_samplers: dict[str, TripletSampler],
    batches: list[Batch],
    out: Path,
    seed: int,
    progress: bool,
) -> dict[str, dict[str, Any]]:
    """Fill ``res.databases`` (exact and k-means, Chen §3.3 / §4.1); saves the exact ones
    under ``out/gradweights``; returns build information per database name."""
    info: dict[str, dict[str, Any]] = {}
    for source in transfer_sources(specs):
        try:
            filler = get_method(source.method)
        except ValueError:
            continue  # its source method is not registered: the variants are not measured
        explainer = filler.factory(
            res.model, res.layer, sampler=train_samplers["all"], top_m=res.top_m
        )
        start = time.perf_counter()
        exact = GradWeightDatabase.from_explainer(
            explainer,
            ((b.x, b.labels) for b in batches),
            top_m=res.top_m,
            labels=torch.cat([b.labels for b in batches]),
            progress=progress,
        )
        build_seconds = time.perf_counter() - start
        start = time.perf_counter()
        compressed = exact.compress_kmeans(res.kmeans_k, seed=seed)
        _ = exact.backend, compressed.backend  # build the search indexes before timing queries
        exact.save(out / "gradweights", name=source.name)
        res.databases[source] = exact
        res.databases[replace(source, kmeans=True)] = compressed
        info[source.name] = {
            "n_entries": len(exact),
            "kmeans_k": res.kmeans_k,
            "build_seconds": build_seconds,
            "kmeans_seconds": time.perf_counter() - start,
        }
    return info


def _ms(variant: Variant, res: Resources) -> tuple[int | None, ...]:
    """The M values a variant runs at: every top-M for top-M variants (a transfer database
    holds the primary top-M only), else ``None``."""
    return res.top_ms if variant.top_m and variant.transfer is None else (None,)


def build_methods(
    specs: tuple[MethodSpec, ...],
    res: Resources,
    prof: BenchProfile,
    rerun_samplers: list[dict[str, TripletSampler]],
    *,
    only_reruns: bool = False,
) -> list[Method]:
    """One :class:`Method` per runnable variant and M; ``reruns`` variants (at the primary M)
    get one explainer per entry of ``rerun_samplers`` (samplers with other seeds).
    ``only_reruns`` keeps just those variants (for the spread across retrained nets)."""
    methods: list[Method] = []
    for spec in specs:
        for variant in spec.variants:
            if only_reruns and not variant.reruns:
                continue
            for m in _ms(variant, res):
                if only_reruns and m not in (None, res.top_m):
                    continue
                explainer = _build(spec, variant, res, prof, m)
                if explainer is None:
                    continue
                reruns: list[Explainer] = []
                if variant.reruns and m in (None, res.top_m):
                    for samplers in rerun_samplers:
                        again = _build(spec, variant, replace(res, samplers=samplers), prof, m)
                        reruns.append(explainer if again is None else again)
                methods.append(
                    Method(
                        name=variant.report_key(
                            top_m=prof.top_m if m in (None, res.top_m) else m,
                            kmeans_k=prof.kmeans_k,
                        ),
                        family=spec.name,
                        explainer=explainer,
                        target=_target(spec),
                        sweep=variant.sweep,
                        database=variant.transfer.name if variant.transfer else None,
                        reruns=reruns,
                    )
                )
    return methods
