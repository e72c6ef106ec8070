"""docs/api.md shows the risk tiers and spec fields as the code defines them."""

from __future__ import annotations

from pathlib import Path

from tollgate.api import crdgen
from tollgate.api.tiers import TIERS

DOC = Path(__file__).resolve().parents[3] / "docs" / "api.md"


def _between(text: str, name: str) -> str:
    start = text.index(f"<!-- {name}:begin -->\n") + len(f"<!-- {name}:begin -->\n")
    return text[start : text.index(f"<!-- {name}:end -->")]


def test_tier_table_in_docs_matches_the_tiers_data() -> None:
    # given the documentation and the tier presets
    doc = DOC.read_text()
    # then the table in the doc is the one rendered from TIERS (regenerate with --tier-table)
    assert _between(doc, "tiers") == crdgen.tier_table()


def test_tier_table_has_one_row_per_tier_with_its_steps() -> None:
    table = crdgen.tier_table()
    for tier, preset in TIERS.items():
        (row,) = [r for r in table.splitlines() if r.startswith(f"| {tier.value} |")]
        assert " → ".join(f"{s.weight}%" for s in preset.steps) in row.replace(" (pause 1m)", "").replace(
            " (pause 2m)", ""
        ).replace(" (approval)", "")
        assert ("| required |" in row) == preset.approval_required


def test_field_table_in_docs_matches_the_crd() -> None:
    doc = DOC.read_text()
    assert _between(doc, "fields") == crdgen.field_table()


def test_docs_quote_server_messages_that_the_models_still_produce() -> None:
    # given the server messages quoted in the doc
    doc = DOC.read_text()
    quoted = [
        line.split("Invalid value: ", 1)[1] for line in doc.splitlines() if "Invalid value: spec." in line
    ]
    assert len(quoted) >= 5
    # then each is, word for word, the message of a CEL rule in the CRD
    messages: list[str] = []

    def collect(node: object) -> None:
        if isinstance(node, dict):
            messages.extend(v["message"] for v in node.get("x-kubernetes-validations", []))
            for v in node.values():
                collect(v)
        elif isinstance(node, list):
            for v in node:
                collect(v)

    collect(crdgen.crd())
    for message in quoted:
        assert message in messages, message
