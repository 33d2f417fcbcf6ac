"""Structural checks of LightGBM's text model format before LightGBM parses it.

LightGBM's parser trusts the file: a truncated tree block or an out-of-range child index
makes it read out of bounds (a crash of the whole process, exit 139, seen with a truncated
``regressor.txt``). :func:`check_model_text` checks what the parser relies on: the header's
``tree_sizes`` match the tree blocks byte for byte, every tree's arrays have the lengths its
``num_leaves`` implies, child indices stay in range, split features exist, and the feature
count is the expected one. Anything else raises ``ValueError`` with the reason.
"""

from __future__ import annotations

import math

_ARRAYS_PER_SPLIT = ("split_feature", "threshold", "decision_type", "left_child", "right_child")


def _header(text: str) -> tuple[dict[str, str], int]:
    """Key/values of the header and the offset where the first tree block starts."""
    end = text.find("\nTree=")
    if not text.startswith("tree\n") or end < 0:
        raise ValueError("not a LightGBM text model (no 'tree' header or no Tree= block)")
    header = dict(line.split("=", 1) for line in text[:end].splitlines()[1:] if "=" in line)
    return header, end + 1


def _tree_fields(block: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in block.splitlines() if "=" in line)


def _ints(fields: dict[str, str], key: str) -> list[int]:
    try:
        return [int(v) for v in fields.get(key, "").split()]
    except ValueError:
        raise ValueError(f"tree field {key!r} is not a list of integers") from None


def _check_tree(i: int, block: str, n_features: int) -> None:
    f = _tree_fields(block)
    if f.get("Tree") != str(i):
        raise ValueError(f"tree block {i} does not start with Tree={i}")
    try:
        leaves = int(f["num_leaves"])
    except (KeyError, ValueError):
        raise ValueError(f"tree {i}: missing or bad num_leaves") from None
    if leaves < 1:
        raise ValueError(f"tree {i}: num_leaves must be >= 1")
    if int(f.get("num_cat", "0")) != 0:
        raise ValueError(f"tree {i}: categorical splits are not used by houseprice")
    values = f.get("leaf_value", "").split()
    if len(values) != leaves or not all(math.isfinite(float(v)) for v in values):
        raise ValueError(f"tree {i}: leaf_value must hold {leaves} finite numbers")
    if leaves == 1:
        return
    for key in _ARRAYS_PER_SPLIT:
        if len(f.get(key, "").split()) != leaves - 1:
            raise ValueError(f"tree {i}: {key} must hold {leaves - 1} values")
    if any(not 0 <= s < n_features for s in _ints(f, "split_feature")):
        raise ValueError(f"tree {i}: split_feature outside 0..{n_features - 1}")
    for key in ("left_child", "right_child"):  # >= 0: internal node; < 0: leaf ~index
        if any(not (-leaves <= c < leaves - 1) for c in _ints(f, key)):
            raise ValueError(f"tree {i}: {key} index out of range")


def check_model_text(text: str, n_features: int) -> None:
    """Raise ``ValueError`` unless ``text`` is a well-formed LightGBM model of ``n_features``."""
    header, start = _header(text)
    if header.get("num_class") != "1" or header.get("num_tree_per_iteration") != "1":
        raise ValueError("expected a single-output regression model (num_class=1)")
    if header.get("max_feature_idx") != str(n_features - 1):
        raise ValueError(
            f"model has max_feature_idx={header.get('max_feature_idx')}, expected "
            f"{n_features - 1} ({n_features} features)"
        )
    try:
        sizes = [int(v) for v in header["tree_sizes"].split()]
    except (KeyError, ValueError):
        raise ValueError("missing or bad tree_sizes in the header") from None
    data = text.encode("utf-8")
    pos = len(text[:start].encode("utf-8"))
    for i, size in enumerate(sizes):
        if size <= 0 or pos + size > len(data):
            raise ValueError(f"tree {i} is truncated (file ends inside it)")
        _check_tree(i, data[pos : pos + size].decode("utf-8", "replace"), n_features)
        pos += size
    if not data[pos:].lstrip(b"\n").startswith(b"end of trees"):
        raise ValueError("tree blocks do not end with 'end of trees' (file truncated or edited)")
