"""Report plots (matplotlib, Agg backend, PNG): success rate per task with Wilson 95% error bars, grouped bars
for comparisons and seen vs held-out scenes, the steps-to-success histogram. Files go to a report's
`plots/` folder (PLOTS_DIR) and are referenced relatively.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PLOTS_DIR = "plots"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _yerr(summaries: list[dict[str, Any] | None]) -> list[list[float]]:
    lo = [max(0.0, s["success_rate"] - s["ci95"][0]) if s else 0.0 for s in summaries]
    hi = [max(0.0, s["ci95"][1] - s["success_rate"]) if s else 0.0 for s in summaries]
    return [lo, hi]


def plot_success_rates(results: dict[str, Any], path: Path) -> Path:
    """Bar per task (and overall when there are several tasks) with Wilson 95% error bars."""
    plt = _plt()
    names = list(results["tasks"])
    sums = [results["tasks"][t] for t in names]
    if len(names) > 1:
        names.append("overall")
        sums.append(results["overall"])
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(names) + 2), 3.6), dpi=100)
    x = range(len(names))
    ax.bar(
        x,
        [s["success_rate"] for s in sums],
        yerr=_yerr(sums),
        capsize=4,
        color=["#4c72b0"] * len(results["tasks"]) + (["#55a868"] if len(names) > len(results["tasks"]) else []),
    )
    ax.set_xticks(list(x), names, rotation=20 if len(names) > 3 else 0, ha="right" if len(names) > 3 else "center")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success rate (95% Wilson CI)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def grouped_bars(
    groups: list[str],
    series: list[tuple[str, list[dict[str, Any] | None]]],
    path: Path,
    ylabel: str = "success rate (95% Wilson CI)",
) -> Path:
    """Grouped bar plot: one group per `groups` entry, one bar per series (label, summary per group; None:
    no bar), error bars from each summary's ci95."""
    plt = _plt()
    n = max(1, len(series))
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(5.0, len(groups) * (0.5 + 0.35 * n) + 2.5), 3.8), dpi=100)
    for j, (label, sums) in enumerate(series):
        xs = [i - 0.4 + width * (j + 0.5) for i in range(len(groups))]
        keep = [(x, s) for x, s in zip(xs, sums) if s]
        if not keep:
            ax.bar([], [], label=label)
            continue
        ax.bar(
            [x for x, _ in keep],
            [s["success_rate"] for _, s in keep],
            width * 0.95,
            yerr=_yerr([s for _, s in keep]),
            capsize=3,
            label=label,
        )
    ax.set_xticks(
        range(len(groups)), groups, rotation=20 if len(groups) > 3 else 0, ha="right" if len(groups) > 3 else "center"
    )
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_steps_histogram(results: dict[str, Any], path: Path) -> Path | None:
    """Histogram of steps to success over successful episodes, one series per task; None if none succeeded."""
    per_task: dict[str, list[int]] = {}
    for e in results["episodes"]:
        if e["success"] and e.get("steps_to_success") is not None:
            per_task.setdefault(e["task"], []).append(int(e["steps_to_success"]))
    if not per_task:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.4), dpi=100)
    allv = [v for vs in per_task.values() for v in vs]
    bins = min(20, max(5, len(set(allv))))
    ax.hist(
        list(per_task.values()), bins=bins, range=(min(allv) - 0.5, max(allv) + 0.5), label=list(per_task), stacked=True
    )
    ax.set_xlabel("steps to success")
    ax.set_ylabel("successful episodes")
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="y", alpha=0.3)
    if len(per_task) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
