"""README numbers from committed results: every table is rendered here from a JSON file.

``python -m houseprice.jobs.docs write`` rewrites each marked section of README and docs/
(:data:`DOCUMENTS`) between ``<!-- <name>:begin -->`` and ``<!-- <name>:end -->`` from the
results files below; ``tests/test_docs.py`` fails when README and the results disagree. ``python -m
houseprice.jobs.docs refresh-demo`` re-runs the standard demo and stores its reports in
``docs/results/demo_standard/`` (the one command behind the demo numbers).

Results files: ``docs/results/demo_standard/{report,evidence}.json`` (``houseprice demo``),
``docs/results/bench_pricing_standard/report.json`` (``houseprice bench pricing``),
``docs/results/bench_explainers_standard/report.json`` (``houseprice bench explainers``),
``benchmarks/results/*.json`` (``python benchmarks/run_all.py``),
``docs/results/demo_standard/explain_choices.json`` (``python benchmarks/explain_choices.py``),
``benchmarks/results/coverage.json`` (``python benchmarks/coverage.py``: ratio study and price
ranges, :mod:`houseprice.jobs.docs_assessment`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from houseprice.jobs.docs_assessment import ratio_study_section
from houseprice.jobs.profile_table import profile_table

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "results"
BENCH = ROOT / "benchmarks" / "results"
MAIN = "G,Bed,Bath,T,A"


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _missing(what: str, command: str) -> str:
    return f"*(no results yet: run `{command}` to produce {what})*"


def demo_section() -> str:
    from houseprice.valuation.report import table2_text

    report = _load(RESULTS / "demo_standard" / "report.json")
    if report is None:
        return _missing(
            "docs/results/demo_standard/", "python -m houseprice.jobs.docs refresh-demo"
        )
    head = f"10% accuracy on {report['test_size']} test houses (synthetic city, profile standard):"
    text = f"```\n{head}\n{table2_text(report)}\n```"
    bench = _load(RESULTS / "bench_pricing_standard" / "report.json")
    row = report["accuracy_within_10pct"][MAIN]
    line = f"This run (city seed 0, training seed 0): {MAIN} lift {100 * row['lift']:+.1f} points"
    if "oracle" in report:
        line += f", {100 * report['oracle']['visual_share_of_oracle_lift']:.0f}% of the oracle lift"
    if bench is not None:
        s = bench["test"]["sets"][MAIN]
        line += (
            f". The pricing benchmark over {s['n']} sealed runs: {100 * s['mean']:+.1f} ± "
            f"{100 * s['std']:.1f} (see Results): read one run with that spread in mind"
        )
    return text + "\n\n" + line + "."


def pricing_section() -> str:
    from houseprice.bench.pricing_report import lift_table

    report = _load(RESULTS / "bench_pricing_standard" / "report.json")
    if report is None:
        return _missing("the pricing benchmark", "houseprice bench pricing --out "
                        "docs/results/bench_pricing_standard --profile standard")  # fmt: skip
    s = report["test"]["sets"][MAIN]
    share = s["share_of_oracle"]
    verdict = (
        "meets" if s["mean"] >= 0.06 and share is not None and share >= 0.6 else "does not meet"
    )
    return (
        f"{len(report['runs'])} runs: sealed city seeds {report['city_seeds']} × training "
        f"seeds {report['training_seeds']}, {report['houses_per_city']:,} houses each, test "
        f"splits scored once ({report['seconds'] / 60:.0f} min on the 2-core machine).\n\n"
        f"{lift_table(report['test'])}\n\n"
        f"Main set {MAIN}: lift {100 * s['mean']:+.1f} ± {100 * s['std']:.1f} points, 95% "
        f"interval [{100 * s['ci95'][0]:+.1f}, {100 * s['ci95'][1]:+.1f}], "
        f"{100 * (share or 0):.0f}% of the oracle lift: this {verdict} the goal of ≥ +6 "
        "points and ≥ 60% of the oracle lift. The intervals treat the runs as independent; "
        "runs of one city share its houses, so they are somewhat optimistic."
    )


def ames_section() -> str:
    report = _load(RESULTS / "bench_pricing_standard" / "report.json")
    if report is None or "ames" not in report:
        return _missing("the Ames scores", "houseprice bench pricing ... --ames")
    a = report["ames"]
    cells = ", ".join(
        f"{k} {100 * v['mean']:.1f} ± {100 * v['std']:.1f}" for k, v in a["accuracy"].items()
    )
    return f"10% accuracy on {a['test_size']} test sales (mean ± sd over LightGBM seeds): {cells}."


def evidence_section() -> str:
    report = _load(RESULTS / "demo_standard" / "evidence.json")
    if report is None:
        return _missing("the evidence scores", "python -m houseprice.jobs.docs refresh-demo")
    u = report["uniform"]
    pointing = report.get("evidence_pointing", {})
    lines = ["| method | mass ratio | × uniform | pointing game |", "|---|---:|---:|---:|"]
    for k, v in report["evidence_mask_ratio"].items():
        hit = pointing.get(k)
        lines.append(f"| {k} | {v:.3f} | {v / u:.2f} | {'–' if hit is None else f'{hit:.2f}'} |")
    hit = pointing.get("uniform")
    lines.append(f"| uniform | {u:.3f} | 1.00 | {'–' if hit is None else f'{hit:.2f}'} |")
    text = f"{report['n_houses']} unseen houses, transfer key `{report['key']}`.\n\n"
    text += "\n".join(lines)
    return text + _driver_lines(report)


def _driver_lines(report: dict[str, Any]) -> str:
    """Per-driver mass ratio / pointing game (test houses where the driver applies) and the
    signed maps' sign agreement, when the report has them."""
    drivers = report.get("drivers")
    if not drivers:
        return ""
    names = list(next(iter(drivers.values())))
    out = [
        "",
        "",
        "Per driver (mass on the driver's evidence pixels / pointing game; houses in brackets):",
        "",
        "| method | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for method, per in drivers.items():
        cells = [f"{per[d]['ratio']:.3f} / {per[d]['pointing']:.2f} ({per[d]['n']})" for d in names]
        out.append(f"| {method} | " + " | ".join(cells) + " |")
    signed = (report.get("signed") or {}).get("transfer")
    if signed:
        agree = ", ".join(
            f"{d} {v['agree']:.2f} ({v['n']}, {'−' if v['expected'] < 0 else '+'})"
            for d, v in signed.items()
        )
        out += [
            "",
            "Signed transfer maps, share of houses whose mass on the driver has the generator's "
            f"sign (houses, expected sign): {agree}.",
        ]
    return "\n".join(out)


def explainers_section() -> str:
    report = _load(RESULTS / "bench_explainers_standard" / "report.json")
    if report is None:
        return _missing("the explainer benchmark", "houseprice bench explainers ...")
    r = report["retrieval"]
    lines = [
        f"Recall@1 {r['recall_at_1']:.3f}, NMI {r['nmi']:.3f} on the unseen classes.",
        "",
        "| method | bbox | mask | WSOL | WSOL (R@1-gated) | s/image |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, m in report["methods"].items():
        gated = m.get("wsol_accuracy_r1_gated")
        lines.append(
            f"| {name} | {m['bbox_ratio_mean']:.3f} | {m['mask_ratio_mean']:.3f} | "
            f"{m['wsol_accuracy']:.3f} | {'–' if gated is None else f'{gated:.3f}'} | "
            f"{1000 * m['seconds_per_image']:.1f} ms |"
        )
    held = [c for c in report.get("claims", []) if c.get("holds") is not None]
    if held:
        lines += ["", "| paper claim | measure | holds |", "|---|---|---|"]
        lines += [
            f"| {c['claim']} | {c.get('metric', '')} | {'yes' if c['holds'] else 'no'} |"
            for c in held
        ]
    return "\n".join(lines)


def explainers_run_section() -> str:
    """What the committed explainer-benchmark run was: net, data, wall time by stage."""
    report = _load(RESULTS / "bench_explainers_standard" / "report.json")
    if report is None:
        return _missing("the explainer benchmark", "houseprice bench explainers ...")
    s, t = report["setup"], report["setup"]["timings"]
    nets = (report.get("retrain_runs") or {}).get("n_nets", 1)
    return (
        f"`houseprice bench explainers --profile {s['profile']} --retrain-runs {nets}`: "
        f"{s['backbone']} net at {s['image_size']} px, {s['loss']} loss, {s['epochs']} epochs, "
        f"{s['n_train_images']} training images; {s['n_test_images']} test images of "
        f"{s['n_test_classes']} unseen classes, {s['n_eval_images']} explained. Wall time "
        f"{t['total_seconds']:,.0f} s ({s['torch_threads']} torch threads, {s['device']}): "
        f"training {t['train_seconds']:,.0f} s, explaining {t['explain_seconds']:,.0f} s, "
        f"{nets - 1} retrained nets {t['retrain_seconds']:,.0f} s."
    )


def tuning_section() -> str:
    """The validation sweep behind the standard profile's embedding settings."""
    res = _load(RESULTS / "bench_explainers_standard" / "tuning.json")
    if res is None:
        return _missing("the tuning sweep", "python -m houseprice.bench.tuning ...")
    lines = [
        "| setting | changes from the standard profile's base | crops | epochs | val R@1 (last) "
        "| val R@1 (best epoch) | val NMI |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for row in res["settings"]:
        changes = ", ".join(f"{k} {v}" for k, v in row["overrides"].items() if k != "epochs")
        lo, hi = row["aug_scale"]
        lines.append(
            f"| `{row['name']}` | {changes} | {100 * lo:.0f}-{100 * hi:.0f} % | {row['epochs']} "
            f"| {row['val_recall_at_1']:.3f} | {row['best_val_recall_at_1']:.3f} "
            f"| {row['val_nmi']:.3f} |"
        )
    return "\n".join(lines)


def benchmarks_section() -> str:
    out = []
    sp = _load(BENCH / "explain_speed.json")
    if sp:
        out.append(
            f"- weight-transfer heatmaps cost {sp['transfer_vs_forward']['ratio']:.2f}× a plain "
            "forward pass (`benchmarks/explain_speed.py`)"
        )
    pt = _load(BENCH / "predict_throughput.json")
    if pt:
        out.append(
            f"- prediction with visual features: {pt['houses_per_second']['end_to_end']:.0f} "
            f"houses/s end to end on {pt['threads']} threads (`benchmarks/predict_throughput.py`)"
        )
    tc = _load(BENCH / "tile_cutting.json")
    if tc:
        run = max(tc["runs"], key=lambda r: r["raster_px"])
        out.append(
            f"- cutting tiles from a {run['raster_px']:,}² px COG: {run['tiles_per_s']:.0f} "
            f"tiles/s, peak RSS {run['peak_rss_mb']:.0f} MB (`benchmarks/tile_cutting.py`)"
        )
    so = _load(BENCH / "scale_out.json")
    if so and "speedup_2_vs_1_workers" in so:
        out.append(
            f"- Dask scoring: {so['speedup_2_vs_1_workers']:.2f}× from 1 to 2 workers, "
            f"{100 * so['dask_overhead_1_worker']:+.0f}% wall time against the local engine at "
            f"1 worker, worker peak memory {100 * so['worker_rss_growth']:+.1f}% from "
            f"{_rows(so, 0)} to {_rows(so, -1)} rows (`benchmarks/scale_out.py`; see "
            "docs/scaling.md)"
        )
    ms = _load(BENCH / "map_size.json")
    if ms and "kib_per_house" in ms:
        out.append(
            f"- a {ms['n_houses']:,}-house map: {ms['kib_per_house']:.1f} KiB per house, page and "
            "data (a folder map; heatmap images excluded) (`benchmarks/map_size.py`)"
        )
    return "\n".join(out) or _missing("benchmark results", "python benchmarks/run_all.py")


def ablation_section() -> str:
    """The validation-split ablation of the siamese choices (benchmarks/siamese_ablation.py)."""
    path = BENCH / "siamese_ablation.jsonl"
    if not path.is_file():
        return _missing("the ablation", "python benchmarks/siamese_ablation.py ...")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    rows = [r for r in rows if r.get("split") == "validation" and "log_rmse" in r]
    cities = sorted({r["city_seed"] for r in rows})
    head = " | ".join(f"city {c}" for c in cities)
    lines = [
        f"| configuration | {head} | mean |",
        "|---|" + "---:|" * (len(cities) + 1),
    ]
    for config in dict.fromkeys(r["config"] for r in rows):
        by_city = {r["city_seed"]: r for r in rows if r["config"] == config}
        cells, shares = [], []
        for c in cities:
            r = by_city.get(c)
            if r is None:
                cells.append("–")
                continue
            e = r["log_rmse"]
            share = (e["without"] - e["with"]) / (e["without"] - e["oracle"])
            shares.append(share)
            cells.append(f"{100 * r['lift'][MAIN]:+.1f} / {100 * share:.0f}%")
        mean = f"{100 * sum(shares) / len(shares):.0f}%" if shares else "–"
        lines.append(f"| `{config}` | {' | '.join(cells)} | {mean} |")
    return (
        f"Validation split only ({MAIN}): 10% accuracy lift (points) / share of the oracle's "
        "log-RMSE gain that the visual features reach; mean = mean share. Raw runs: "
        "`benchmarks/results/siamese_ablation.jsonl`.\n\n" + "\n".join(lines)
    )


def _mean_sd(values: list[float]) -> tuple[float, float]:
    import numpy as np

    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def harness_section() -> str:
    """The visual-feature recipes on the validation harness (benchmarks/visual_harness.py)."""
    path = BENCH / "visual_harness.jsonl"
    if not path.is_file():
        return _missing("the harness table", "python benchmarks/visual_harness.py ...")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    rows = [r for r in rows if r.get("harness") == "dev-test-path-v1"]
    base = {(r["city_seed"], r["seed"]): r for r in rows if r["config"] == "(default)"}
    drivers = ("effect_lot", "effect_pool", "effect_trees", "effect_water", "effect_park")
    lines = [
        "| recipe | runs | lift (points) | share of oracle lift | share of oracle log-RMSE gain "
        "| paired Δ share vs default | premium explained | "
        + " | ".join(d.removeprefix("effect_") for d in drivers)
        + " | train s | predict s |",
        "|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(drivers) + "---:|---:|",
    ]
    for config in dict.fromkeys(r["config"] for r in rows):
        rs = [r for r in rows if r["config"] == config]
        lift, sd = _mean_sd([r["lift"][MAIN] for r in rs])
        oracle, _ = _mean_sd([r["oracle_lift"] for r in rs])
        share, share_sd = _mean_sd([r["rmse_share_of_oracle"] for r in rs])
        diffs = [
            r["rmse_share_of_oracle"] - base[(r["city_seed"], r["seed"])]["rmse_share_of_oracle"]
            for r in rs
            if (r["city_seed"], r["seed"]) in base
        ]
        if config == "(default)" or not diffs:
            paired = "–"
        else:
            d, dsd = _mean_sd(diffs)
            se = f" ± {100 * dsd / len(diffs) ** 0.5:.0f}" if len(diffs) > 1 else ""
            paired = f"{100 * d:+.0f}{se} (n={len(diffs)})"
        expl = [
            _mean_sd([r["explained"][k]["beyond_attributes"] for r in rs])[0]
            for k in ("visual_log_premium", *drivers)
        ]
        train, _ = _mean_sd([r["train_seconds"] for r in rs])
        pred_s = [r["predict_seconds"] for r in rs if r.get("predict_seconds") is not None]
        pred = f"{_mean_sd(pred_s)[0]:.1f}" if pred_s else "–"
        n = len(rs)
        of_oracle = f"{100 * lift / oracle:.0f}%" if oracle > 0 else "–"
        lines.append(
            f"| `{config}` | {n} | {100 * lift:+.1f}{f' ± {100 * sd:.1f}' if n > 1 else ''} | "
            f"{of_oracle} | {100 * share:.0f}%{f' ± {100 * share_sd:.0f}' if n > 1 else ''} | "
            f"{paired} | "
            + " | ".join(f"{100 * e:.0f}%" for e in expl)
            + f" | {train:.0f} | {pred} |"
        )
    return (
        f"Harness ({MAIN}; development cities × training seeds, 300 scored houses a run; mean ± "
        "sd over runs). *Share of oracle lift*: mean lift / mean oracle lift. *Paired Δ*: mean "
        "± standard error of the run-by-run difference in log-RMSE share from the default (same "
        "city and seed). *Premium explained* and the driver columns: share of each effect's "
        "variance beyond the attributes that the visual features explain on the scored rows. "
        "Seconds: training (siamese + regressors) and `predict_frame` on the scored rows, on "
        "a shared 2-core machine. Raw runs: `benchmarks/results/visual_harness.jsonl`.\n\n"
        + "\n".join(lines)
    )


def machines_section() -> str:
    """The standard demo with native and pinned CPU kernels (issue 28's AVX-512 measurement)."""
    import hashlib

    base = RESULTS / "demo_standard"
    isa, report = _load(base / "cpu_isa.json"), _load(base / "report.json")
    if isa is None or report is None:
        return _missing("the CPU kernel comparison", "docs/results/demo_standard/cpu_isa.json")
    same = hashlib.sha256((base / "report.json").read_bytes()).hexdigest()
    same = same == isa["committed_report_sha256"]
    committed = "the committed `report.json`" if same else f"main {isa['commit']}'s `report.json`"
    nat, pin = isa["native"], isa["pinned"]
    pinned_lift = f"{100 * report['accuracy_within_10pct'][MAIN]['lift']:+.1f}" if same else "–"

    def runs(seconds: list[float]) -> str:
        return " / ".join(f"{s:.1f} s" for s in seconds)

    rows = [
        ("torch CPU capability", nat["cpu_capability"], pin["cpu_capability"]),
        (f"{MAIN} lift (points)", f"{100 * nat['lift_main']:+.1f}", pinned_lift),
        (
            f"`report.json` = {committed} (AVX2 machine)",
            "no" if not nat["report_identical_to_committed"] else "yes",
            "**byte for byte**" if pin["report_identical_to_committed"] else "no",
        ),
        (
            "transfer heatmaps, share (test)",
            f"{nat['evidence_transfer_share']:.3f}",
            f"{pin['evidence_transfer_share']:.3f}",
        ),
        ("demo wall time", f"{nat['demo_seconds']:.0f} s", f"{pin['demo_seconds']:.0f} s"),
        (
            "predict 10,000 houses (2 paired runs)",
            runs(nat["predict_10k_seconds"]),
            runs(pin["predict_10k_seconds"]),
        ),
    ]
    lines = [
        f"| standard demo, seed 0, main {isa['commit']}, AVX-512 machine | `--cpu-isa native` "
        "| `--cpu-isa avx2` (default) |",
        "|---|---:|---:|",
        *(f"| {a} | {b} | {c} |" for a, b, c in rows),
    ]
    return "\n".join(lines)


def choices_section() -> str:
    """The explanations' validation choices (benchmarks/explain_choices.py)."""
    res = _load(RESULTS / "demo_standard" / "explain_choices.json")
    command = (
        "python benchmarks/explain_choices.py --demo DEMO_OUT "
        "--out docs/results/demo_standard/explain_choices.json"
    )
    if res is None or "chosen" not in res:
        return _missing("the validation choices", command)
    lines = [
        "| layer / signed head | share (transfer) | pointing | share (abs. signed) "
        "| sign agreement |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, v in res["variants"].items():
        agree = [d["agree"] for d in v["signed"]["transfer"].values() if d["n"]]
        ratio, point = v["evidence_mask_ratio"], v["evidence_pointing"]
        lines.append(
            f"| {name.replace('_', ' / ')} | {ratio['transfer']:.3f} | {point['transfer']:.2f} | "
            f"{ratio['transfer_abs']:.3f} | {sum(agree) / len(agree):.2f} |"
        )
    fused = ", ".join(
        f"{k.replace('_', ' ')} {v['ratio']:.3f} / {v['pointing']:.2f}"
        for k, v in res["fusions"].items()
    )
    k = res["key"]
    sweep = ", ".join(f"{s}: {r:.3f}" for s, r in res["centre_prior_sweep"].items())
    chosen, defaults = res["chosen"], res["defaults"]
    same = [n for n in chosen if chosen[n] == defaults[n]]
    differ = [f"{n} (chosen {chosen[n]}, default {defaults[n]})" for n in chosen if n not in same]
    n = res["variants"]["final_main"]["n_houses"]
    return "\n".join(
        [
            f"{n} validation houses (own database entries removed); `{command}`.",
            "",
            *lines,
            "",
            f"Fusions of the two layers' transfer maps (share / pointing): {fused}.",
            "",
            f"Search key, paired over {k['n_houses']} houses: share visual "
            f"{k['ratio']['visual']:.3f}, "
            f"pooled {k['ratio']['pooled']:.3f} (pooled − visual {k['pooled_minus_visual']:+.4f} ± "
            f"{k['standard_error']:.4f} s.e.).",
            "",
            f"Centre prior sigma (fraction of the tile side) → share: {sweep}.",
            "",
            "Chosen by the stated criteria and equal to the defaults: "
            + (", ".join(f"{n} = {chosen[n]}" for n in same) or "none")
            + ("." if not differ else "; differing: " + ", ".join(differ) + "."),
        ]
    )


def scale_out_section() -> str:
    """docs/scaling.md's measured figures: benchmarks/results/scale_out.json, with the ratios
    read against the machine's own 2-core ceiling (two local processes at once)."""
    so = _load(BENCH / "scale_out.json")
    if not so or "machine_ceiling_2_vs_1" not in so:
        return _missing("the scale-out benchmark", "python benchmarks/scale_out.py ...")
    local, d1, d2 = so["speed"]
    pair = so["two_local_processes"]
    rows = [
        "| run | houses/s | × local (1 process) |",
        "|---|---:|---:|",
        f"| local engine, 1 process | {local['houses_per_second']:.0f} | 1.00 |",
        f"| Dask, 1 worker | {d1['houses_per_second']:.0f} | "
        f"{d1['houses_per_second'] / local['houses_per_second']:.2f} |",
        f"| Dask, 2 workers | {d2['houses_per_second']:.0f} | "
        f"{d2['houses_per_second'] / local['houses_per_second']:.2f} |",
        f"| 2 local processes at once, half the rows each (the ceiling) | "
        f"{pair['houses_per_second']:.0f} | {so['machine_ceiling_2_vs_1']:.2f} |",
    ]
    growth = 100 * so["worker_rss_growth"]
    return "\n".join(
        [
            f"{so['rows']:,} houses, {so['machine']}.",
            "",
            *rows,
            "",
            f"- 1 → 2 Dask workers: **{so['speedup_2_vs_1_workers']:.2f}×** (goal ≥ 1.7×; "
            f"the machine's own ceiling: {so['machine_ceiling_2_vs_1']:.2f}×); 2 Dask workers "
            f"price {100 * d2['houses_per_second'] / pair['houses_per_second']:.0f}% as many "
            "houses per second as the two independent processes",
            f"- Dask at 1 worker against the local engine: "
            f"**{100 * so['dask_overhead_1_worker']:+.1f}%** wall time (goal ≤ 15%)",
            f"- peak RSS per worker, {_rows(so, 0)} → {_rows(so, -1)} rows: **{growth:+.1f}%** "
            "(goal: flat within 20%)",
        ]
    )


def allocator_section() -> str:
    """docs/scaling.md's allocator table: benchmarks/results/allocator.json."""
    al = _load(BENCH / "allocator.json")
    if not al:
        return _missing("the allocator benchmark", "python benchmarks/allocator.py")
    labels = {
        "main-default": "main thread, glibc defaults",
        "main-tuned": "main thread, `tune_allocator()` (the CLI)",
        "dask-default": "Dask task, distributed's worker environment",
        "dask-houseprice": "Dask task, houseprice's LocalCluster",
    }

    def mean(runs: list[dict[str, float]], key: str) -> float:
        return sum(r[key] for r in runs) / len(runs)

    rows = [
        f"| {labels[name]} | {mean(runs, 'seconds'):.1f} | {mean(runs, 'system_seconds'):.1f} | "
        f"{mean(runs, 'minor_faults') / 1e6:.2f} | {mean(runs, 'peak_rss_mb'):,.0f} |"
        for name, runs in al["runs"].items()
    ]
    return "\n".join(
        [
            f"Visual features of {al['tiles']:,} tiles, 1 thread, means of {al['rounds']} "
            f"interleaved rounds ({al['machine']}):",
            "",
            "| setting | seconds | of which system | minor faults (M) | peak RSS MB |",
            "|---|---:|---:|---:|---:|",
            *rows,
            "",
            f"houseprice's settings: **{al['speedup_main']:.2f}×** in the main thread, "
            f"**{al['speedup_dask']:.2f}×** in a Dask task.",
        ]
    )


def _rows(scale_out: dict[str, Any], i: int) -> str:
    """The ``i``-th memory measurement's row count of the scale-out report, as "10k" / "1M"."""
    n = int(scale_out["memory_dask_2_workers"][i]["rows"])
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k"


SECTIONS: dict[str, Callable[[], str]] = {
    "profiles": profile_table,
    "demo": demo_section,
    "pricing": pricing_section,
    "ames": ames_section,
    "evidence": evidence_section,
    "explainers": explainers_section,
    "benchmarks": benchmarks_section,
    "ablation": ablation_section,
    "harness": harness_section,
    "choices": choices_section,
    "machines": machines_section,
    "explainers_run": explainers_run_section,
    "tuning": tuning_section,
    "scale_out": scale_out_section,
    "allocator": allocator_section,
    "ratio_study": ratio_study_section,
}
#: The files whose marked sections are rendered (paths relative to the repository).
DOCUMENTS = (
    "README.md",
    "docs/pricing.md",
    "docs/explain.md",
    "docs/bench_explainers.md",
    "docs/scaling.md",
)


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def render(text: str) -> str:
    """``text`` (README) with every marked section replaced by its rendering."""
    for name, fn in SECTIONS.items():
        begin, end = markers(name)
        if begin in text:
            head, rest = text.split(begin, 1)
            _, tail = rest.split(end, 1)
            text = f"{head}{begin}\n{fn()}\n{end}{tail}"
    return text


def refresh_demo() -> None:
    """Run the standard demo (seed 0) and store its reports as the committed results."""
    import shutil
    import tempfile

    from houseprice.artifacts import atomic_write_json
    from houseprice.jobs.demo import run_demo  # (main pinned the CPU kernels before torch)

    with tempfile.TemporaryDirectory() as tmp:
        res = run_demo(Path(tmp) / "demo", profile="standard", seed=0, progress=False)
        dest = RESULTS / "demo_standard"
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(res.report_dir / "report.json", dest / "report.json")
        shutil.copyfile(res.out / "explain" / "report.json", dest / "evidence.json")
        atomic_write_json(dest / "seconds.json", res.seconds)


def main(argv: list[str]) -> None:
    if argv[:1] == ["refresh-demo"]:
        from houseprice.runtime import pin_cpu_isa

        pin_cpu_isa()  # the CLI's default kernels (HOUSEPRICE_CPU_ISA), before torch runs
        refresh_demo()
    elif argv[:1] == ["write"]:
        for name in DOCUMENTS:
            doc = ROOT / name
            doc.write_text(render(doc.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        print("usage: python -m houseprice.jobs.docs write | refresh-demo", file=sys.stderr)
        raise SystemExit(2)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
