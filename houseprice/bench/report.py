"""The benchmark's human report: ``report.md`` (Chen Table 1 layout at each top-M, all methods,
threshold sweep, M sweep, spread across retrained nets, claims) and the figures
``sensitivity_m.png`` (Chen Fig. 7a) and ``qualitative.png`` (Chen Fig. 5). Rows and columns
follow ``report["methods"]``, so a newly registered method shows up without changes here."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from houseprice.artifacts import atomic_write_bytes
from houseprice.bench.batches import Batch
from houseprice.data.cub import IMAGENET_MEAN, IMAGENET_STD
from houseprice.explain import heatmap_ratio_in_box, heatmap_ratio_in_mask


def finite(obj: Any) -> Any:
    """Replace NaN/inf floats by None so the report is valid JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def _fmt(mean: float | None, std: float | None = None) -> str:
    if mean is None:
        return "–"
    return f"{mean:.3f}" if std is None else f"{mean:.3f} ± {std:.3f}"


def _num(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:.1e}" if 0 < abs(v) < 0.01 else f"{v:.3f}"


def _header(report: dict[str, Any]) -> list[str]:
    setup = report["setup"]
    t = setup["timings"]
    return [
        f"# Explainer benchmark — {report['dataset']} ({setup['profile']} profile)",
        "",
        f"Embedding net: {setup['backbone']} at {setup['image_size']} px, "
        f"{setup['n_channels']} x {setup['feature_map'][0]} x {setup['feature_map'][1]} "
        f"explained map, {setup['loss']} loss, {setup['epochs']} epochs; "
        f"**Recall@1 {report['retrieval']['recall_at_1']:.3f}, "
        f"NMI {report['retrieval']['nmi']:.3f}** on {setup['n_test_images']} test images "
        f"of {setup['n_test_classes']} unseen classes.",
        "",
        f"Explained: {setup['n_eval_images']} test images (class-stratified); partners for "
        f"sampled methods from the test split (N_s = {setup['n_samples']}), top-M = "
        f"{setup['top_m']}; weight-transfer database over {setup['n_database_images']} "
        f"training images (k-means K = {setup['kmeans_k']}). WSOL: largest component at "
        f"t = {setup['wsol_threshold']}, hit when IoU >= {setup['wsol_iou']}.",
        "",
        f"Wall time {t['total_seconds']:.0f} s (data {t['data_seconds']:.0f} s, training "
        f"{t['train_seconds']:.0f} s, embeddings {t['embed_seconds']:.0f} s, explaining "
        f"{t['explain_seconds']:.0f} s"
        + (f", retrained nets {t['retrain_seconds']:.0f} s" if "retrain_seconds" in t else "")
        + f"; {setup['torch_threads']} torch threads, "
        f"{setup['device']}).",
        "",
    ]


def _table1(res: dict[str, Any], m: int, primary: bool = True) -> list[str]:
    """Chen Table 1 layout; a method that was not run shows "–"."""
    title = "## Visual attention accuracy (layout of Chen et al. Table 1)"
    if not primary:
        title = f"### The same at M = {m}, the papers' 2.4 % of the channels"
    lines = [
        title,
        "",
        "| Metric | Uniform | Grad-CAM ST | Grad-CAM all channels | Grad-CAM top-"
        f"{m} | Grad-CAM++ ST | Grad-CAM++ all channels | Grad-CAM++ top-{m} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    cols = ["uniform"] + [
        f"{b}_{v}"
        for b in ("gradcam", "gradcampp")
        for v in ("single_triplet", "all_channels", f"top{m}")
    ]
    for label, key in (("BBox", "bbox_ratio"), ("Mask", "mask_ratio")):
        cells = [
            _fmt(
                res.get(c, {}).get(f"{key}_mean"),
                None if c == "uniform" else res.get(c, {}).get(f"{key}_std"),
            )
            for c in cols
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    wsol = [_fmt(res.get(c, {}).get("wsol_accuracy")) for c in cols]
    lines.append("| WSOL acc. | " + " | ".join(wsol) + " |")
    lines.append("")
    if primary:
        lines += [
            "ST = single triplet. Ratios are mean ± std over images of the heatmap mass inside "
            "the box / mask.",
            "",
        ]
    return lines


def _retrained(info: dict[str, Any] | None) -> list[str]:
    """Per-net scores of the rerun variants and their spread across retrained nets."""
    if not info:
        return [
            "## Spread across retrained nets (Bachhawat Table 1)",
            "",
            "Not measured: one embedding net (`retrain_runs` = 1; pass `--retrain-runs N`).",
            "",
        ]
    names = list(info["spread"])
    lines = [
        f"## Spread across {info['n_nets']} retrained nets (Bachhawat Table 1: 8 nets)",
        "",
        "Training seeds " + ", ".join(str(s) for s in info["seeds"]) + "; box ratio per net, "
        f"then the {info['std']}.",
        "",
        "| Net (seed) | R@1 | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for net in info["nets"]:
        cells = [_fmt(net["methods"][n]["bbox_ratio_mean"]) for n in names]
        r1 = net["retrieval"]["recall_at_1"]
        lines.append(f"| {net['seed']} | {r1:.3f} | " + " | ".join(cells) + " |")
    for metric, label in (("bbox_ratio_mean", "box"), ("mask_ratio_mean", "mask")):
        cells = [_num(info["spread"][n][f"{metric}_std"]) for n in names]
        lines.append(
            f"| std ({label}) | {_num(info['recall_at_1_std'])} | " + " | ".join(cells) + " |"
        )
    lines.append("")
    return lines


def _all_methods(res: dict[str, Any]) -> list[str]:
    lines = [
        "## All methods",
        "",
        "| Method | BBox ratio | Mask ratio | WSOL acc. (t=0.2) | best t (acc.) | "
        "WSOL ∧ R@1 | s / image |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in res.items():
        sweep = r["threshold_sweep"]
        best = int(np.argmax(sweep["accuracy"]))
        lines.append(
            f"| {name} | {_fmt(r['bbox_ratio_mean'], r['bbox_ratio_std'])} | "
            f"{_fmt(r['mask_ratio_mean'], r['mask_ratio_std'])} | {r['wsol_accuracy']:.3f} | "
            f"{sweep['thresholds'][best]:.2f} ({sweep['accuracy'][best]:.3f}) | "
            f"{r['wsol_accuracy_r1_gated']:.3f} | {r['seconds_per_image'] * 1000:.1f} ms |"
        )
    thresholds = next(iter(res.values()))["threshold_sweep"]["thresholds"]
    lines += [
        "",
        "WSOL ∧ R@1 counts a hit only when the image's nearest test neighbour shares its class "
        "(Taha §4.2). Seconds per image exclude building the transfer databases "
        "(see `report.json`, `methods.*.database`).",
        "",
        "## WSOL accuracy over the threshold t",
        "",
        "| Method | " + " | ".join(f"{x:.2f}" for x in thresholds) + " |",
        "|---|" + "---|" * len(thresholds),
    ]
    for name, r in res.items():
        acc = r["threshold_sweep"]["accuracy"]
        lines.append(f"| {name} | " + " | ".join(f"{a:.2f}" for a in acc) + " |")
    lines.append("")
    return lines


def _sensitivity(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "## Sensitivity to M (Grad-CAM, N_s triplets; as Chen Fig. 7a)",
        "",
        "![sensitivity over M](sensitivity_m.png)",
        "",
        "| M | BBox ratio | Mask ratio | WSOL acc. |",
        "|---|---|---|---|",
    ]
    for row in rows:
        label = f"{row['m']} (all)" if row["all_channels"] else str(row["m"])
        lines.append(
            f"| {label} | {_fmt(row['bbox_ratio_mean'], row['bbox_ratio_std'])} | "
            f"{_fmt(row['mask_ratio_mean'], row['mask_ratio_std'])} | "
            f"{row['wsol_accuracy']:.3f} |"
        )
    lines.append("")
    return lines


def _claims(claims: list[dict[str, Any]]) -> list[str]:
    verdicts = [c["holds"] for c in claims if not c.get("missing")]
    lines = [
        "## The papers' orderings, measured",
        "",
        f"{sum(v is True for v in verdicts)} hold, {sum(v is False for v in verdicts)} fail, "
        f"{len(claims) - len(verdicts) + sum(v is None for v in verdicts)} not measured.",
        "",
        "| Claim | Metric | Values | Holds |",
        "|---|---|---|---|",
    ]
    for c in claims:
        vals = ", ".join(f"{n}: {_num(v)}" for n, v in c["values"].items())
        if c.get("difference") is not None:
            vals += f" (difference {c['difference']:+.3f})"
        holds = {True: "yes", False: "**no**", None: "n/a"}[c["holds"]]
        if c.get("missing"):
            holds = "not measured"
        lines.append(f"| {c['claim']} | {c['metric']} | {vals} | {holds} |")
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """The human report: setup, Chen-style Table 1, all methods, sweep, claims, figures."""
    res = report["methods"]
    m = report["setup"]["profile_config"]["top_m"]
    extra = [x for x in report["setup"].get("top_ms", [m]) if x != m]
    lines = [
        *_header(report),
        *_table1(res, m),
        *(line for x in extra for line in _table1(res, x, primary=False)),
        *_all_methods(res),
        *_sensitivity(report["sensitivity_m"]),
        *_retrained(report.get("retrain_runs")),
        *_claims(report["claims"]),
        "",
        "## Qualitative results (as Chen Fig. 5)",
        "",
        "Image with its box, mask, then one map per method; numbers are the box and mask ratios.",
        "",
        "![qualitative grid](qualitative.png)",
        "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ figures


def _ratio_text(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else "zero map"


def _save_png(fig: Any, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    atomic_write_bytes(path, buffer.getvalue())


def _sensitivity_figure(plt: Any, rows: list[dict[str, Any]], path: Path) -> None:
    """Box/mask ratio over M (Chen Fig. 7a)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    xs = np.arange(len(rows))
    for offset, key, label in ((-0.2, "bbox_ratio", "BBox"), (0.2, "mask_ratio", "Mask")):
        means = [r[f"{key}_mean"] if r[f"{key}_mean"] is not None else np.nan for r in rows]
        stds = [r[f"{key}_std"] if r[f"{key}_std"] is not None else 0.0 for r in rows]
        ax.bar(xs + offset, means, width=0.4, yerr=stds, capsize=2, label=label)
    ax.set_xticks(xs, [f"{r['m']}\n(all)" if r["all_channels"] else str(r["m"]) for r in rows])
    ax.set_xlabel("M (top-M channels)")
    ax.set_ylabel("heatmap ratio")
    ax.set_ylim(0, 1.1)
    ax.legend(loc="upper center", ncol=2, fontsize=8)
    ax.set_title("Sensitivity of M (Grad-CAM, sampled triplets)")
    fig.tight_layout()
    _save_png(fig, path)
    plt.close(fig)


def _samples(
    batches: list[Batch], keep: set[int]
) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """De-normalised images with their box and mask at the qualitative positions."""
    samples: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}
    mean = np.asarray(IMAGENET_MEAN)[:, None, None]
    std = np.asarray(IMAGENET_STD)[:, None, None]
    for b in batches:
        for row, pos in enumerate(b.positions.tolist()):
            if pos in keep:
                image = np.clip(b.x[row].numpy() * std + mean, 0, 1).transpose(1, 2, 0)
                mask = b.masks[row] if b.masks is not None else None
                samples[pos] = (image, b.boxes[row], mask)
    return samples


def _qualitative_figure(
    plt: Any, samples: dict[int, Any], maps: dict[str, dict[int, np.ndarray]], path: Path
) -> None:
    """Image + box, mask, then one map per method with its ratios (Chen Fig. 5)."""
    from matplotlib.patches import Rectangle

    positions, names = sorted(samples), list(maps)
    n_cols = 2 + len(names)
    fig, axes = plt.subplots(
        len(positions), n_cols, figsize=(1.25 * n_cols, 1.45 * len(positions)), squeeze=False
    )
    for r, pos in enumerate(positions):
        image, box, mask = samples[pos]
        ax = axes[r, 0]
        ax.imshow(image)
        x0, y0, x1, y1 = box
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="lime", lw=1))
        ax.set_title("image + box" if r == 0 else "", fontsize=6)
        axes[r, 1].imshow(mask if mask is not None else np.zeros(image.shape[:2]), cmap="gray")
        axes[r, 1].set_title("mask" if r == 0 else "", fontsize=6)
        for c, name in enumerate(names):
            ax = axes[r, c + 2]
            heat = maps[name].get(pos)
            if heat is None:
                continue
            ax.imshow(image)
            ax.imshow(heat, cmap="jet", alpha=0.5, vmin=0, vmax=1)
            text = _ratio_text(heatmap_ratio_in_box(heat[None], box[None])[0])
            if mask is not None and mask.any():
                text += " / " + _ratio_text(heatmap_ratio_in_mask(heat[None], mask[None])[0])
            ax.set_xlabel(text, fontsize=6, labelpad=1)
            if r == 0:
                ax.set_title(name.replace("_", "\n", 1), fontsize=5)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout(pad=0.3)
    _save_png(fig, path)
    plt.close(fig)


def write_figures(
    out: Path,
    report: dict[str, Any],
    batches: list[Batch],
    keep: set[int],
    maps: dict[str, dict[int, np.ndarray]],
) -> None:
    """``sensitivity_m.png`` and ``qualitative.png``; ``maps``: method -> position -> map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _sensitivity_figure(plt, report["sensitivity_m"], out / "sensitivity_m.png")
    samples = _samples(batches, keep)
    if samples:
        _qualitative_figure(plt, samples, maps, out / "qualitative.png")
