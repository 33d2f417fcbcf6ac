"""The docs say what the code does: the README's profile table is the one the code builds."""

from __future__ import annotations

from pathlib import Path

from houseprice.jobs.docs import DOCUMENTS, SECTIONS, markers, render
from houseprice.jobs.profile_table import profile_table

BEGIN, END = markers("profiles")

ROOT = Path(__file__).resolve().parents[1]


def test_readme_profile_table_is_generated_from_the_profiles() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert BEGIN in text and END in text, "README lost its profile-table markers"
    shown = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert shown == profile_table(), (
        "README's profile table differs from houseprice.profiles; regenerate it with "
        "`python -m houseprice.jobs.profile_table`"
    )


def test_every_readme_number_section_is_rendered_from_its_results_file() -> None:
    texts = {name: (ROOT / name).read_text(encoding="utf-8") for name in DOCUMENTS}
    for name in SECTIONS:
        begin, _ = markers(name)
        assert any(begin in t for t in texts.values()), f"the docs lost their {name!r} markers"
    for doc, text in texts.items():
        assert render(text) == text, (
            f"{doc} disagrees with the committed results; run `python -m houseprice.jobs.docs "
            "write`"
        )


def test_render_replaces_a_stale_number() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    _, end = markers("profiles")
    stale = text.replace(end, "| `quick` | 999 houses |\n" + end, 1)
    assert stale != text and render(stale) == text


def test_no_docstring_cites_a_document_outside_the_repo() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for p in [*ROOT.glob("houseprice/**/*.py"), *ROOT.glob("cli/*.py")]
        if "DESIGN §" in p.read_text(encoding="utf-8")
    ]
    assert not offenders, f"cite files in the repo (data_specs/, docs/), not DESIGN: {offenders}"
