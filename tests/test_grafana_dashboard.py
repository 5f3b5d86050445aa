"""The shipped Grafana dashboard reads every metric pgkd records, under the names Ray exports."""
import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_dashboard_charts_every_recorded_metric_by_its_exported_name():
    source = (REPO / "pgkd" / "actors" / "metrics.py").read_text()
    counters = set(re.findall(r'_counter\("(pgkd_\w+)"', source))
    gauges = set(re.findall(r'_gauge\("(pgkd_\w+)"', source))
    assert counters and gauges
    dashboard = json.loads((REPO / "ray_configs" / "grafana_pgkd_dashboard.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    charted = set(re.findall(r"\bray_(pgkd_\w+)\{", exprs))
    exported = {f"{name}_total" for name in counters} | gauges  # Ray adds ray_, and _total to counters
    assert charted == exported
    assert all('SessionName=~"$SessionName"' in t["expr"] for p in dashboard["panels"] for t in p["targets"])
