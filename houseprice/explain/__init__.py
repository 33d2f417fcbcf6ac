"""Generic explainers for PyTorch CNNs (classification, embedding, siamese) and localisation
metrics.

This package imports only torch, torchvision, numpy, scipy, scikit-learn, safetensors, tqdm and
the standard library (faiss optionally) - never another ``houseprice`` subpackage; a test
enforces it. See ``docs/explain.md`` for a guide with an example per method.

Methods (stable names in :data:`METHODS`, built by :func:`make_explainer`):

* ``gradcam`` / ``gradcampp`` - Grad-CAM (Chen eq. 2-4) and Grad-CAM++;
* ``gradcam_vanilla`` / ``gradcam_abs`` - retrieval Grad-CAM (Taha eq. 6) and its abs (eq. 7);
* ``sampled_gradcam`` / ``sampled_gradcampp`` - sampled-loss grad-weights with top-M channels
  (Chen §3.2) over triplets (:class:`TripletSampler`) or rank pairs (:class:`RankPairSampler`);
* ``transfer`` - grad-weight database and weight transfer (Chen §3.3);
* ``embeddingcam_point`` / ``embeddingcam_mean`` - EmbeddingCAM (Bachhawat eq. 9-12);
* ``l2caf`` - L2-CAF, class-oblivious and class-specific, fast and vanilla (Taha eq. 1-3);
* ``uniform`` - the uniform baseline.
"""

from houseprice.explain.base import (
    Capture,
    Explainer,
    Explanation,
    GradPass,
    LowRes,
    normalize_maps,
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
from houseprice.explain.l2caf import L2CAF, L2CAFConfig
from houseprice.explain.metrics import (
    box_iou,
    box_masks,
    heatmap_ratio_in_box,
    heatmap_ratio_in_mask,
    threshold_sweep,
    wsol_accuracy,
    wsol_boxes,
)
from houseprice.explain.registry import METHODS, make_explainer
from houseprice.explain.sampled import (
    PartnerSampler,
    RankPairSampler,
    SampledGradCAM,
    SampledGradCAMPlusPlus,
    TripletSampler,
)
from houseprice.explain.transfer import GradWeightDatabase, QueryResult, WeightTransferCAM
from houseprice.explain.uniform import UniformCAM

__all__ = [
    "L2CAF",
    "METHODS",
    "Capture",
    "EmbeddingCAM",
    "Explainer",
    "Explanation",
    "GradCAM",
    "GradCAMAbs",
    "GradCAMPlusPlus",
    "GradPass",
    "GradWeightDatabase",
    "L2CAFConfig",
    "LowRes",
    "PartnerSampler",
    "QueryResult",
    "RankPairSampler",
    "RetrievalGradCAM",
    "SampledGradCAM",
    "SampledGradCAMPlusPlus",
    "TripletSampler",
    "UniformCAM",
    "WeightTransferCAM",
    "box_iou",
    "box_masks",
    "class_proxies",
    "embedding_sum",
    "gradcam_weights",
    "gradcampp_weights",
    "heatmap_ratio_in_box",
    "heatmap_ratio_in_mask",
    "make_explainer",
    "normalize_maps",
    "threshold_sweep",
    "top_m_weights",
    "upsample",
    "weighted_sum",
    "wsol_accuracy",
    "wsol_boxes",
]
