"""Small writers for DVC plot files (CSV) and PNG figures shared by the stages."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable, Mapping, Sequence


def write_csv(path: Path, rows: Iterable[Mapping], columns: Sequence[str]) -> Path:
    """Rows of dicts as a CSV with ``columns`` (missing values empty); floats to 6 significant digits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else (f"{row[c]:.6g}" if isinstance(row[c], float) else row[c])
                             for c in columns])
    return path


def histogram_png(path: Path, groups: Mapping[str, Sequence[float]], *, title: str, xlabel: str, bins: int = 40) -> Path:
    """Overlaid histograms of several score groups (e.g. best vs worst tier)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=110)
    for label, values in groups.items():
        if len(values):
            ax.hist(values, bins=bins, alpha=0.55, label=f"{label} (n={len(values)})")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("texts")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
