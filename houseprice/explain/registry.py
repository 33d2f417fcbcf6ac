"""The explainer registry: one entry per method, everything a runner needs to build and run it.

An entry (:class:`MethodSpec`) carries the stable name, a human label, the factory, the model
outputs it explains, the resources it needs (a partner sampler, class proxies, a grad-weight
database, gradients), the target it wants per batch and the *benchmark variants* it is run in
(e.g. "single triplet", "all channels (N_s)", "top-M", "transfer exact / k-means"). Runners
loop over the registry instead of listing methods by hand:

* :func:`make_explainer` builds a method by name with its keywords;
* :func:`methods_for` answers capability questions, e.g. "which methods explain an embedding
  net given a pair/triplet sampler, without class labels":
  ``methods_for("embedding", have={"sampler"})``;
* :func:`register` / :func:`unregister` / :func:`registered` (a context manager for tests) add
  a method: one file with the explainer class plus one ``register(...)`` call.

Entries are kept in registration order; :data:`METHODS` is a live, read-only view of the names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, get_args, overload

from torch import nn

from houseprice.explain.base import Explainer
from houseprice.explain.embeddingcam import EmbeddingCAM
from houseprice.explain.gradcam import GradCAM, GradCAMAbs, GradCAMPlusPlus, RetrievalGradCAM
from houseprice.explain.l2caf import L2CAF
from houseprice.explain.sampled import SampledGradCAM, SampledGradCAMPlusPlus
from houseprice.explain.transfer import WeightTransferCAM
from houseprice.explain.uniform import UniformCAM

#: What the model outputs: class scores or an embedding (metric-learning net, siamese branch).
Output = Literal["logits", "embedding"]
#: Resources a method needs: ``sampler=`` (a PartnerSampler), ``proxies=`` (class proxies),
#: ``database=`` (a GradWeightDatabase), ``head=`` (layer output -> model output), and
#: ``"gradients"`` (it backpropagates; not a keyword).
Need = Literal["sampler", "proxies", "database", "head", "gradients"]
#: What ``explain`` wants per batch: nothing, class labels of the images (required), the
#: sampler's anchors (labels for triplets, scores for rank pairs), or classes to explain
#: (``None`` = arg-max).
TargetKind = Literal["none", "labels", "anchors", "classes"]
KEYWORD_NEEDS: frozenset[str] = frozenset({"sampler", "proxies", "database", "head"})
DEFAULT_RANK = 100  # a new method's benchmark rows come after the built-ins'


@dataclass(frozen=True)
class TransferSource:
    """The grad-weight database a weight-transfer variant queries (Chen §3.3, §4.1).

    ``method`` (a registry name) explains the *training* images with a sampler over training
    partners and keeps the top-M weights; ``name`` names the database (file stem, report
    prefix); ``kmeans`` compresses it to K centres (Chen §4.1 storage analysis).
    """

    name: str
    method: str
    kmeans: bool = False


@dataclass(frozen=True)
class Variant:
    """One configuration of a method in a benchmark; ``key`` names its row in a report.

    ``key`` may hold ``{M}`` (the run's top-M) and ``{K}`` (its k-means size).
    ``top_m``: ``True`` passes ``top_m=M``, ``False`` passes ``top_m=None`` (all channels),
    ``None`` passes nothing. ``partners``: the sampler draws ``"all"`` N_s valid partners per
    anchor or a ``"single"`` one. ``transfer``: the database to query. ``reruns``: re-run with
    other sampler seeds and with retrained nets for the run-to-run spread. ``sweep``: the
    benchmark's sensitivity over M (Chen Fig. 7a) is computed from this variant's weights.
    ``options``: fixed keywords.
    """

    key: str
    label: str
    top_m: bool | None = None
    partners: Literal["all", "single"] | None = None
    transfer: TransferSource | None = None
    reruns: bool = False
    sweep: bool = False
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False)

    def report_key(self, *, top_m: int, kmeans_k: int) -> str:
        """``key`` with ``{M}`` and ``{K}`` filled in."""
        return self.key.format(M=top_m, K=kmeans_k)


@dataclass(frozen=True)
class MethodSpec:
    """A registry entry; see the module docstring."""

    name: str
    label: str
    factory: Callable[..., Explainer]
    outputs: frozenset[Output]
    needs: frozenset[Need] = frozenset()
    uses: frozenset[Need] = frozenset()  # optional resources passed when a runner has them
    target: TargetKind = "none"
    variants: tuple[Variant, ...] = ()
    paper: str = ""
    report_rank: int = DEFAULT_RANK  # benchmark row position (ascending, ties: registration)
    tags: frozenset[str] = frozenset()  # free-form labels a runner selects methods by

    def explains(self, output: Output) -> bool:
        return output in self.outputs

    @property
    def keywords(self) -> frozenset[str]:
        """Keyword resources the factory takes (needed or optional)."""
        return (self.needs | self.uses) & KEYWORD_NEEDS


_REGISTRY: dict[str, MethodSpec] = {}


def _frozen_set(values: Iterable[str], allowed: tuple[str, ...], what: str) -> frozenset[Any]:
    out = frozenset(values)
    unknown = sorted(out - set(allowed))
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; choose from {', '.join(allowed)}")
    return out


def register(
    name: str,
    factory: Callable[..., Explainer],
    *,
    label: str,
    outputs: Iterable[Output],
    needs: Iterable[Need] = (),
    uses: Iterable[Need] = (),
    target: TargetKind = "none",
    variants: Sequence[Variant] | None = None,
    paper: str = "",
    report_rank: int = DEFAULT_RANK,
    tags: Iterable[str] = (),
    replace: bool = False,
) -> MethodSpec:
    """Add a method. ``factory(model, target_layer, **keywords) -> Explainer``.

    ``variants=None`` runs the method once in benchmarks, under its own name; ``()`` never.
    ``report_rank`` places its rows in benchmark reports (ascending; ties keep the
    registration order; the built-ins use 0-62). ``tags`` are free-form labels a runner
    selects methods by (:func:`methods_for`'s ``tag``). A name already registered is an error
    unless ``replace=True``.
    """
    if not name or not name.isidentifier():
        raise ValueError(f"method name must be a non-empty identifier, got {name!r}")
    if name in _REGISTRY and not replace:
        raise ValueError(f"explainer {name!r} is already registered (pass replace=True)")
    if not callable(factory):
        raise TypeError(f"factory must be callable, got {type(factory).__name__}")
    if target not in get_args(TargetKind):
        raise ValueError(f"target must be one of {get_args(TargetKind)}, got {target!r}")
    spec = MethodSpec(
        name=name,
        label=label,
        factory=factory,
        outputs=_frozen_set(outputs, get_args(Output), "outputs"),
        needs=_frozen_set(needs, get_args(Need), "needs"),
        uses=_frozen_set(uses, get_args(Need), "uses"),
        target=target,
        variants=(Variant(key=name, label=label),) if variants is None else tuple(variants),
        paper=paper,
        report_rank=report_rank,
        tags=frozenset(tags),
    )
    _REGISTRY[name] = spec
    return spec


def unregister(name: str) -> MethodSpec:
    """Remove a method; returns its entry."""
    try:
        return _REGISTRY.pop(name)
    except KeyError:
        raise ValueError(f"unknown explainer {name!r}") from None


@contextmanager
def registered(name: str, factory: Callable[..., Explainer], **fields: Any) -> Iterator[MethodSpec]:
    """:func:`register` for the ``with`` block; the previous entry (if any) comes back after."""
    previous = _REGISTRY.get(name)
    order = list(_REGISTRY)
    spec = register(name, factory, replace=True, **fields)
    try:
        yield spec
    finally:
        _REGISTRY.pop(name, None)
        if previous is not None:
            restored = {n: (previous if n == name else _REGISTRY[n]) for n in order}
            _REGISTRY.clear()
            _REGISTRY.update(restored)


def get_method(name: str) -> MethodSpec:
    """The entry called ``name``."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown explainer {name!r}; choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def method_specs() -> tuple[MethodSpec, ...]:
    """Every entry, in registration order."""
    return tuple(_REGISTRY.values())


def report_order(specs: Iterable[MethodSpec]) -> tuple[MethodSpec, ...]:
    """``specs`` sorted by ``report_rank`` (stable: ties keep their order)."""
    return tuple(sorted(specs, key=lambda spec: spec.report_rank))


def methods_for(
    output: Output,
    *,
    have: Iterable[Need] = (),
    labels: bool = False,
    gradients: bool = True,
    tag: str | None = None,
) -> tuple[MethodSpec, ...]:
    """Entries that can explain a model with this ``output`` given the resources in ``have``.

    ``labels``: class labels of the explained images are available (otherwise methods whose
    target is ``"labels"`` are left out); ``gradients=False`` leaves out methods that
    backpropagate; ``tag`` keeps only entries carrying that tag. Example:
    ``methods_for("embedding", have={"sampler"})`` lists the methods for an embedding net with
    a pair/triplet sampler and no class labels.
    """
    available = _frozen_set(have, get_args(Need), "resources") | {"gradients"}
    return tuple(
        spec
        for spec in _REGISTRY.values()
        if spec.explains(output)
        and spec.needs <= available
        and (labels or spec.target != "labels")
        and (gradients or "gradients" not in spec.needs)
        and (tag is None or tag in spec.tags)
    )


class _MethodNames(Sequence[str]):
    """Live read-only view of the registered names (``METHODS``)."""

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[str, ...]: ...
    def __getitem__(self, index: int | slice) -> str | tuple[str, ...]:
        return tuple(_REGISTRY)[index]

    def __len__(self) -> int:
        return len(_REGISTRY)

    def __contains__(self, name: object) -> bool:
        return name in _REGISTRY

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, Sequence) else other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(self))


#: Stable method names accepted by :func:`make_explainer` (live: follows :func:`register`).
METHODS: Sequence[str] = _MethodNames()


def make_explainer(
    name: str, model: nn.Module, target_layer: nn.Module | None, **kwargs: Any
) -> Explainer:
    """Build the explainer called ``name`` (one of :data:`METHODS`) with method keywords.

    Required keywords: ``sampler=`` for the ``sampled_*`` methods, ``proxies=`` for
    ``embeddingcam_mean``, ``database=`` for ``transfer`` (see each entry's ``needs``).
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown explainer {name!r}; choose one of {', '.join(METHODS)}")
    try:
        return _REGISTRY[name].factory(model, target_layer, **kwargs)
    except TypeError as err:
        raise TypeError(f"make_explainer({name!r}): {err}") from err


# ------------------------------------------------------------------------------ built-ins


def _embeddingcam_mean(model: nn.Module, target_layer: nn.Module, **kw: Any) -> EmbeddingCAM:
    if kw.get("proxies") is None:
        raise ValueError(
            "embeddingcam_mean needs proxies= (e.g. class_proxies(embeddings, labels)); "
            "explain with target = class labels"
        )
    return EmbeddingCAM(model, target_layer, **kw)


def _sampled_variants(prefix: str) -> tuple[Variant, ...]:
    """Chen Table 1: baseline 2 (one triplet), baseline 3 (N_s, all channels), ours (top-M)."""
    single = Variant(f"{prefix}_single_triplet", "single triplet", top_m=False, partners="single")
    every = Variant(
        f"{prefix}_all_channels",
        "all channels (N_s)",
        top_m=False,
        partners="all",
        sweep=prefix == "gradcam",  # Chen Fig. 7a from the Grad-CAM weights
    )
    top = Variant(
        f"{prefix}_top{{M}}", "top-M", top_m=True, partners="all", reruns=prefix == "gradcam"
    )
    return single, every, top


def _transfer_variants() -> tuple[Variant, ...]:
    out: list[Variant] = []
    for base in ("gradcam", "gradcampp"):
        exact = TransferSource(base, f"sampled_{base}")
        kmeans = TransferSource(base, f"sampled_{base}", kmeans=True)
        out.append(Variant(f"{base}_transfer_exact", "transfer exact", transfer=exact))
        out.append(Variant(f"{base}_transfer_kmeans{{K}}", "transfer k-means", transfer=kmeans))
    return tuple(out)


def _embeddingcam_variants(proxy: str) -> tuple[Variant, ...]:
    return (
        Variant(f"embeddingcam_{proxy}_all", "all channels", top_m=False, reruns=True),
        Variant(f"embeddingcam_{proxy}_top{{M}}", "top-M", top_m=True, reruns=True),
    )


# Registration order is the order of METHODS (stable since v0.1); report_rank orders the
# benchmark rows as in Chen Table 1: baselines, sampled, transfer, then Bachhawat and Taha.
# Tag "rank-pairs": compared on rank-siamese (pair-ranking) nets, e.g. houseprice's evidence
# scores of house explanations.
_BUILTINS: tuple[dict[str, Any], ...] = (
    dict(name="gradcam", factory=GradCAM, label="Grad-CAM", outputs=("logits",),
         needs=("gradients",), target="classes", paper="Chen eq. 2-4"),
    dict(name="gradcampp", factory=GradCAMPlusPlus, label="Grad-CAM++", outputs=("logits",),
         needs=("gradients",), target="classes", paper="Chattopadhyay eq. 19"),
    dict(name="gradcam_vanilla", factory=RetrievalGradCAM, label="retrieval Grad-CAM",
         outputs=("embedding",), needs=("gradients",), paper="Taha eq. 6", report_rank=60),
    dict(name="gradcam_abs", factory=GradCAMAbs, label="Grad-CAM-abs", outputs=("embedding",),
         needs=("gradients",), paper="Taha eq. 7", report_rank=61),
    dict(name="sampled_gradcam", factory=SampledGradCAM, label="sampled Grad-CAM",
         outputs=("embedding",), needs=("sampler", "gradients"), target="anchors",
         variants=_sampled_variants("gradcam"), paper="Chen §3.2", report_rank=10,
         tags=("rank-pairs",)),
    dict(name="sampled_gradcampp", factory=SampledGradCAMPlusPlus, label="sampled Grad-CAM++",
         outputs=("embedding",), needs=("sampler", "gradients"), target="anchors",
         variants=_sampled_variants("gradcampp"), paper="Chen §3.2", report_rank=11),
    dict(name="embeddingcam_point", factory=EmbeddingCAM, label="EmbeddingCAM (point proxy)",
         outputs=("embedding",), needs=("gradients",), variants=_embeddingcam_variants("point"),
         paper="Bachhawat eq. 9, 12", report_rank=50, tags=("rank-pairs",)),
    dict(name="embeddingcam_mean", factory=_embeddingcam_mean, label="EmbeddingCAM (mean proxy)",
         outputs=("embedding",), needs=("proxies", "gradients"), target="labels",
         variants=_embeddingcam_variants("mean"), paper="Bachhawat eq. 9, 11", report_rank=51),
    dict(name="l2caf", factory=L2CAF, label="L2-CAF", outputs=("logits", "embedding"),
         needs=("gradients",), uses=("head",), paper="Taha eq. 1-3", report_rank=62,
         tags=("rank-pairs",)),
    dict(name="transfer", factory=WeightTransferCAM, label="weight transfer",
         outputs=("embedding",), needs=("database",), variants=_transfer_variants(),
         paper="Chen §3.3", report_rank=20),
    dict(name="uniform", factory=UniformCAM, label="Uniform", outputs=("logits", "embedding"),
         paper="Chen baseline 1", report_rank=0, tags=("rank-pairs",)),
)  # fmt: skip

for _entry in _BUILTINS:
    register(**_entry)
del _entry
