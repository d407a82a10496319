"""The cost and burst reports as the preview writes them, and as make diff compares them."""

from __future__ import annotations

import json

from toolkit import diff
from toolkit.preview import write_cost_and_burst
from toolkit.reports import build_reports


def test_the_preview_writes_both_documents_and_a_byte_stable_chart(stack_program, tmp_path, monkeypatch):
    monkeypatch.delenv("COFOUNDER_BURST_CHART", raising=False)
    reports = build_reports(stack_program("prod"))
    write_cost_and_burst("prod", reports, tmp_path)
    cost = json.loads((tmp_path / "prod.cost.json").read_text())
    assert {"currency", "pricesAsOf", "region", "monthly", "lines"} <= set(cost)
    assert cost["currency"] == "USD" and cost["region"] == "us-east-1"
    assert set(cost["monthly"]) == {"minScale", "maxScale"}
    assert {"resource", "item", "quantity", "unit", "unitPrice", "monthlyMinScale", "monthlyMaxScale"} \
        <= set(cost["lines"][0])
    burst = json.loads((tmp_path / "prod.burst.json").read_text())
    assert burst["targetSeconds"] == 60 and set(burst["readySeconds"]) == {"backend", "frontend", "worker"}
    point = burst["series"][0]
    assert point["t"] == 0 and {"demand", "ready", "pending"} <= set(point["apps"]["backend"])
    assert set(point["nodes"]) == {"platform-apps", *(f"platform-system-us-east-1{z}" for z in "abc")}
    svg = (tmp_path / "prod.burst.svg").read_text()
    assert svg.startswith("<?xml") and "<dc:date>" not in svg
    (tmp_path / "prod.burst.svg").unlink()  # drawn again from scratch: the same bytes
    write_cost_and_burst("prod", reports, tmp_path)
    assert (tmp_path / "prod.burst.svg").read_text() == svg
    monkeypatch.setenv("COFOUNDER_BURST_CHART", "off")  # make diff's builds: no chart, no stale one
    write_cost_and_burst("prod", reports, tmp_path)
    assert not (tmp_path / "prod.burst.svg").exists()


def _snapshot(reports):
    return {"resources": [], "outputs": {}, "reports": reports}


def test_make_diff_shows_the_cost_change_and_the_prod_burst(stack_program):
    head = build_reports(stack_program("prod"))
    base = json.loads(json.dumps({k: head[k] for k in ("cost", "burst")}))
    nodes = next(x for x in base["cost"]["data"]["lines"] if x["item"].endswith("m6i.2xlarge nodes"))
    nodes["monthlyMaxScale"] -= 100
    base["cost"]["data"]["monthly"]["maxScale"] -= 100
    base["burst"]["data"]["readySeconds"]["worker"] = 190
    d = diff.diff_stack("prod", _snapshot(base), _snapshot(head))
    text = diff.render([d], base_label="base", head_label="head")
    top = head["cost"]["data"]["monthly"]["maxScale"]
    assert f"| maximum | ${top - 100:,.2f} | ${top:,.2f} | +100.00 = +100.00 (" in text  # the line that made it
    assert "| platform-apps | m6i.2xlarge nodes |" in text
    worker = head["burst"]["data"]["distribution"]["worker"]
    assert (f"| worker | 190 s | {worker['p95']} s | {worker['p50']} s / {worker['worst']} s | ✅ |") in text
    assert "```mermaid\nxychart-beta" in text and text.count("    line [") == 3
    assert "Monthly cost at minimum and maximum scale" not in text  # its own section, not a report table


def test_an_incomplete_estimate_leads_with_its_holes_and_labels_its_totals(stack_program, monkeypatch):
    from capacity import cost
    from toolkit.cost_reports import cost_report

    full = cost.load_prices("us-east-1")
    holed = cost.PriceTable(full.region, full.currency, full.hours_per_month,
                            {k: v for k, v in full.prices.items() if k != "rds.backup-storage.gb-month"})
    monkeypatch.setattr(cost, "load_prices", lambda region: holed)
    report = cost_report(stack_program("prod"))
    assert report["title"].startswith("incomplete: 1 line unpriced. ") and report["title"].endswith("priced lines only")
    assert report["notes"][0] == "incomplete: 1 line unpriced: the totals below count the priced lines only."
    assert "priced lines only: minimum scale $" in report["notes"][1]
    assert report["ok"] is False and report["data"]["incomplete"] == "incomplete: 1 line unpriced"


def test_make_diff_leads_the_cost_section_with_an_incomplete_side(stack_program):
    head = json.loads(json.dumps(build_reports(stack_program("prod"))["cost"]))
    base = json.loads(json.dumps(head))
    gone = next(x for x in head["data"]["lines"] if x["priceKey"] == "rds.backup-storage.gb-month")
    gone.update(unitPrice=None, monthlyMinScale=None, monthlyMaxScale=None)
    head["data"].update(complete=False, incomplete="incomplete: 1 line unpriced")
    del base["data"]["incomplete"]  # a BASE written before the field existed: counted from its lines
    text = diff.render([diff.diff_stack("prod", _snapshot({"cost": base}), _snapshot({"cost": head}))],
                       base_label="base", head_label="head")
    section = text[text.index("**working tree: incomplete"):]
    assert section.startswith("**working tree: incomplete: 1 line unpriced**. Totals and the change count the "
                              "priced lines only.")
    assert section.index("incomplete") < section.index("| minimum |")
    assert "| scale | BASE (priced lines) | working tree (priced lines) | change (and the lines that make it) |" in section
