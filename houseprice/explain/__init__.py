"""Generic explainers for PyTorch CNNs (classification, embedding, siamese) and localisation
metrics.

This package imports only torch, torchvision, numpy, scipy, scikit-learn, safetensors, tqdm and
the standard library (faiss optionally) - never another ``houseprice`` subpackage; a test
enforces it. See ``docs/explain.md`` for a guide with an example per method.

Methods (stable names in :data:`METHODS`, built by :func:`make_explainer`; the registry,
:mod:`houseprice.explain.registry`, also says what each method needs and in which benchmark
variants it runs, and takes new methods through :func:`register`):

* ``gradcam`` / ``gradcampp`` - Grad-CAM (Chen eq. 2-4) and Grad-CAM++;
* ``gradcam_vanilla`` / ``gradcam_abs`` - retrieval Grad-CAM (Taha eq. 6) and its abs (eq. 7);
* ``sampled_gradcam`` / ``sampled_gradcampp`` - sampled-loss grad-weights with top-M channels
  (Chen §3.2) over triplets (:class:`TripletSampler`) or rank pairs (:class:`RankPairSampler`);
* :class:`SignedPairGradCAM` - signed Grad-CAM of the rank-pair logit margin (not in the
  registry: its map is signed, :func:`signed_maps`);
* ``transfer`` - grad-weight database and weight transfer (Chen §3.3);
* ``embeddingcam_point`` / ``embeddingcam_mean`` - EmbeddingCAM (Bachhawat eq. 9-12);
* ``l2caf`` - L2-CAF, class-oblivious and class-specific, fast and vanilla (Taha eq. 1-3);
* ``uniform`` - the uniform baseline.

Typed targets (:mod:`houseprice.explain.targets`): :class:`ClassTarget`,
:class:`EmbeddingTarget`, :class:`SimilarityTarget`, :class:`EmbeddingSumTarget`.
"""

from houseprice.explain.base import (
    Capture,
    Explainer,
    Explanation,
    GradPass,
    LowRes,
    normalize_maps,
    signed_maps,
    top_m_weights,
    upsample,
    weighted_sum,
)
from houseprice.explain.embeddingcam import EmbeddingCAM, class_proxies
from houseprice.explain.gradcam import (
    GradCAM,
    GradCAMAbs,
    GradCAMPlusPlus,
    RetrievalGradCAM,
    embedding_sum,
    gradcam_weights,
    gradcampp_weights,
)
from houseprice.explain.gradweights import GradWeightDatabase, QueryResult
from houseprice.explain.l2caf import L2CAF, L2CAFConfig
from houseprice.explain.metrics import (
    box_iou,
    box_masks,
    heatmap_ratio_in_box,
    heatmap_ratio_in_mask,
    pointing_game,
    signed_mass_in_mask,
    threshold_sweep,
    wsol_accuracy,
    wsol_boxes,
)
from houseprice.explain.registry import (
    METHODS,
    MethodSpec,
    TransferSource,
    Variant,
    get_method,
    make_explainer,
    method_specs,
    methods_for,
    register,
    registered,
    report_order,
    unregister,
)
from houseprice.explain.sampled import (
    PartnerSampler,
    RankPairSampler,
    SampledGradCAM,
    SampledGradCAMPlusPlus,
    TripletSampler,
)
from houseprice.explain.signed import SignedPairGradCAM
from houseprice.explain.targets import (
    ClassTarget,
    EmbeddingSumTarget,
    EmbeddingTarget,
    SimilarityTarget,
)
from houseprice.explain.transfer import WeightTransferCAM
from houseprice.explain.uniform import UniformCAM

__all__ = [
    "L2CAF",
    "METHODS",
    "Capture",
    "ClassTarget",
    "EmbeddingCAM",
    "EmbeddingSumTarget",
    "EmbeddingTarget",
    "Explainer",
    "Explanation",
    "GradCAM",
    "GradCAMAbs",
    "GradCAMPlusPlus",
    "GradPass",
    "GradWeightDatabase",
    "L2CAFConfig",
    "LowRes",
    "MethodSpec",
    "PartnerSampler",
    "QueryResult",
    "RankPairSampler",
    "RetrievalGradCAM",
    "SampledGradCAM",
    "SampledGradCAMPlusPlus",
    "SignedPairGradCAM",
    "SimilarityTarget",
    "TransferSource",
    "TripletSampler",
    "UniformCAM",
    "Variant",
    "WeightTransferCAM",
    "box_iou",
    "box_masks",
    "class_proxies",
    "embedding_sum",
    "get_method",
    "gradcam_weights",
    "gradcampp_weights",
    "heatmap_ratio_in_box",
    "heatmap_ratio_in_mask",
    "make_explainer",
    "method_specs",
    "methods_for",
    "normalize_maps",
    "pointing_game",
    "register",
    "registered",
    "report_order",
    "signed_maps",
    "signed_mass_in_mask",
    "threshold_sweep",
    "top_m_weights",
    "unregister",
    "upsample",
    "weighted_sum",
    "wsol_accuracy",
    "wsol_boxes",
]
