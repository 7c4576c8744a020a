"""Suggested persons at scale (issue 19): DBSCAN over tens of thousands of unknown faces of one
owner, on synthetic faces that look like dlib's, and the whole FACE_CLUSTERS step on Postgres.

``python -m scenedex.tools.bench_clusters [--faces 10000 30000 100000] [--identities N]
[--database-url URL] [--json]``

**Faces** (``synthetic_faces``): ``identities`` identities whose centroids are random unit
vectors of one cone (two centroids ~0.55-0.65 apart, the closest pairs ~0.5: dlib's "different
people 0.5-0.6+"); each identity has at least ``min_faces`` faces and the rest are shared out
by a Zipf law of exponent ``zipf`` (1: a few main characters hold most faces; 0: even). A face
is its centroid plus Gaussian noise, at a distance drawn uniformly from ``FACE_RADIUS``, so two
faces of one identity are ~0.2-0.35 apart. ``noise_share`` of the faces are singletons (each
its own centroid). Descriptors are unit float32 rows. The generator's measured distances are in
the output (``generator``).

**Figures per size** (``sizes[n]``): ``full`` (``DbscanFaceClusterer`` + ``cluster_faces``,
the step's full clustering), ``incremental`` (``assign_incrementally`` of 1 % more faces from
the same identities onto those clusters), ``quality`` (adjusted Rand index of the clusters vs
the identities over the faces of identities, DBSCAN noise counted as singletons; clusters vs
identities) and ``variants`` (the same faces through other sklearn settings, labels only).
Peak RSS is the process's high-water mark (``/proc/self/status`` VmHWM, reset through
``/proc/self/clear_refs`` before each measurement; ``ru_maxrss`` where that is unavailable)
less the RSS when the measurement started (after ``gc.collect`` and glibc's ``malloc_trim``:
memory an earlier measurement freed would otherwise hide the next one's peak): every
allocation (numpy, sklearn's C++ and Python objects), not only numpy's.

**Postgres** (``--database-url``): a fresh owner with the faces in scene face records
(``FACES_PER_SCENE`` per scene), then ``FaceClusterStep.run``: first run (full), second run
(no-op), a run after 1 % more scenes (incremental), with the sizes of the stored state.
Thumbnails are off (no keyframes): the real step also crops one per new suggestion.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from scenedex.tools.bench_cluster_faces import (
    FACE_RADIUS,
    RSS_METHOD,
    SLOW_VARIANTS_MAX,
    Generator,
    distance_profile,
    measure_size,
    synthetic_faces,
)
from scenedex.tools.bench_clusters_step import measure_step
from scenedex.tools.machine import cpu_model

# --- entry point -------------------------------------------------------------------------------


def run(
    sizes: Sequence[int],
    identities: int | None,
    *,
    database_url: str | None = None,
    db_sizes: Sequence[int] = (),
    zipf: float = 1.0,
    noise_share: float = 0.3,
    slow_max: int = SLOW_VARIANTS_MAX,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Every figure as one JSON-able dict: ``{"machine", "generator", "distances", "sizes",
    "postgres"}``."""
    generators = [Generator(n, identities or max(1, n // 100), noise_share, zipf) for n in sizes]
    report: dict[str, Any] = {
        "machine": machine(),
        "generator": {**asdict(generators[0]), "faces": list(sizes), "face_radius": FACE_RADIUS}
        if generators
        else None,
        "distances": distance_profile(synthetic_faces(generators[0])) if generators else None,
        "rss_method": RSS_METHOD,
        "sizes": {str(g.faces): measure_size(g, slow_max, say) for g in generators},
        "postgres": None,
    }
    if database_url:
        report["postgres"] = {
            str(n): measure_step(
                database_url, Generator(n, identities or max(1, n // 100), noise_share, zipf), say
            )
            for n in db_sizes
        }
    return report


def machine() -> dict[str, Any]:
    """CPU model (``tools.machine.cpu_model``), cores, load, library versions (no torch import)."""
    import os

    import sklearn

    return {
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
    }


def print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=150)
    console.print(f"machine: {report['machine']}")
    console.print(f"generator: {report['generator']}")
    console.print(f"distances: {report['distances']}")
    console.print(f"peak RSS: {report['rss_method']}")
    table = Table(title="clustering (wall s / peak MiB above start)")
    for column in ("faces", "what", "seconds", "peak MiB", "clusters", "ARI / right"):
        table.add_column(column)
    for size, fig in report["sizes"].items():
        q, inc = fig["quality"], fig["incremental"]
        table.add_row(
            size, "cluster_faces (DBSCAN)", str(fig["full"]["seconds"]), str(fig["full"]["peak_mib"]),
            f"{q['clusters']} / {q['identities']} ids", str(q["ari"]),
        )  # fmt: skip
        table.add_row(
            size, f"assign_incrementally {inc['new_faces']}", str(inc["seconds"]), str(inc["peak_mib"]),
            f"joined {inc['joined']}", str(inc["identity_faces_joined_right"]),
        )  # fmt: skip
        for name, v in fig["variants"].items():
            table.add_row(
                size, name, str(v["seconds"]), str(v["peak_mib"]), str(v["clusters"]), str(v["ari"])
            )
    console.print(table)
    if report["postgres"]:
        steps = Table(title="FACE_CLUSTERS step on Postgres (wall s / peak MiB)")
        for column in ("faces", "first (full)", "second (no-op)", "+1 % (incremental)", "noise JSON", "rows"):
            steps.add_column(column)
        for size, fig in report["postgres"].items():
            rows = fig["face_clusters"]
            steps.add_row(
                size,
                *(
                    f"{fig[k]['seconds']} s / {fig[k]['peak_mib']} MiB full={fig[k]['full']}"
                    for k in ("first", "second", "after_1pct_more")
                ),
                f"{fig['state_noise_json_bytes']} B",
                f"{rows['rows']} rows, {rows['row_bytes']} B",
            )
        console.print(steps)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m scenedex.tools.bench_clusters", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--faces", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    parser.add_argument("--identities", type=int, default=None, help="default: faces // 100")
    parser.add_argument("--zipf", type=float, default=1.0, help="identity size exponent (0: even)")
    parser.add_argument("--noise-share", type=float, default=0.3)
    parser.add_argument(
        "--slow-max", type=int, default=SLOW_VARIANTS_MAX, help="largest size for ball_tree/HDBSCAN"
    )
    parser.add_argument("--database-url")
    parser.add_argument("--db-faces", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    say = (lambda _: None) if args.json else (lambda text: print(text, flush=True))
    report = run(
        args.faces, args.identities, database_url=args.database_url, db_sizes=args.db_faces,
        zipf=args.zipf, noise_share=args.noise_share, slow_max=args.slow_max, say=say,
    )  # fmt: skip
    if args.json:
        print(json.dumps(report))
    else:
        print_table(report)


if __name__ == "__main__":
    main()
