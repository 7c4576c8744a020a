"""docs/OPERATIONS.md documents every Prometheus metric: scenedex's own (found by scanning the
source for prometheus_client metric constructors) and dramatiq's middleware's, with their type
and labels; and it lists nothing that no longer exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import dramatiq.middleware.prometheus

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "src" / "scenedex"
DOC = ROOT / "docs" / "OPERATIONS.md"
KINDS = {
    "Counter": "counter",
    "Gauge": "gauge",
    "GaugeMetricFamily": "gauge",  # a custom collector's gauge (worker/backlog.py)
    "Histogram": "histogram",
    "Summary": "summary",
    "Info": "info",
}
METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def defined_metrics(path: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """``{exposed name: (type, labels)}`` for each ``Counter("name", "help", [labels])`` (or
    ``prom.Counter(...)``, ``name=``/``labelnames=`` keywords; a collector's
    ``GaugeMetricFamily("name", "help", labels=[...])``) in a file importing prometheus_client."""
    text = path.read_text()
    if "prometheus_client" not in text:
        return {}
    found = {}
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        kind = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if kind not in KINDS:
            continue
        keywords = {k.arg: k.value for k in node.keywords}
        name_node = node.args[0] if node.args else keywords.get("name")
        labels_keyword = keywords.get("labelnames", keywords.get("labels"))
        labels_node = node.args[2] if len(node.args) > 2 else labels_keyword
        if not (isinstance(name_node, ast.Constant) and isinstance(name_node.value, str)):
            continue
        name = name_node.value
        if not METRIC_NAME.match(name):
            continue
        if kind == "Counter" and not name.endswith("_total"):
            name += "_total"  # prometheus_client exposes counters with the suffix
        labels = frozenset(ast.literal_eval(labels_node)) if labels_node is not None else frozenset()
        found[name] = (KINDS[kind], labels)
    return found


def documented_metrics() -> dict[str, tuple[str, frozenset[str]]]:
    """Rows of the metrics table: ``| `name` | type | `label` (...), ... | meaning | where |``."""
    section = DOC.read_text().split("## Metrics", 1)[1]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 5 and (match := re.fullmatch(r"`([a-z_:0-9]+)`", cells[0])):
            labels = frozenset(re.findall(r"`([a-z_]+)`", re.sub(r"\([^)]*\)", "", cells[2])))
            rows[match.group(1)] = (cells[1], labels)
    return rows


def test_scanner_finds_the_known_metrics() -> None:
    """The scan must see what we know is there (else the test below proves nothing)."""
    ours = defined_metrics(SOURCES / "worker" / "metrics.py")
    assert ours["scenedex_job_items_total"] == ("counter", frozenset({"kind", "status"}))
    assert ours["scenedex_job_duration_seconds"] == ("histogram", frozenset({"trigger", "status"}))
    theirs = defined_metrics(Path(dramatiq.middleware.prometheus.__file__))
    assert theirs["dramatiq_messages_inprogress"] == ("gauge", frozenset({"queue_name", "actor_name"}))
    assert len(theirs) == 7


def test_every_metric_is_documented_with_its_type_and_labels() -> None:
    defined = {}
    for path in sorted(SOURCES.rglob("*.py")):
        defined.update(defined_metrics(path))
    defined.update(defined_metrics(Path(dramatiq.middleware.prometheus.__file__)))
    documented = documented_metrics()
    missing = sorted(set(defined) - set(documented))
    assert not missing, f"metrics missing from the table in docs/OPERATIONS.md: {missing}"
    stale = sorted(set(documented) - set(defined))
    assert not stale, f"docs/OPERATIONS.md lists metrics that are not defined anywhere: {stale}"
    wrong = {name: (documented[name], spec) for name, spec in defined.items() if documented[name] != spec}
    assert not wrong, f"type or labels differ (documented, defined): {wrong}"
