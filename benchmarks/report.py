"""Markdown tables of the benchmark results."""

# The targets of the per-step ratios: (ratio name, limit, what it compares).
TARGETS = (
    ("importance_256", 1.15, "`ImportanceTraining` presample 256 / `model.fit`"),
    ("importance_1024_arithmetic", 1.15,
     "`ImportanceTraining` presample 1024 / (forward 1024 + bare step)"),
)
MEMORY_LIMIT = 1.3
# Ratios shown beside the targets, for reference: (ratio name, what it compares).
REFERENCES = (
    ("importance_256_spe8",
     "the same with `steps_per_execution=8`, against `model.fit` with it"),
    ("importance_256_arithmetic",
     "`ImportanceTraining` presample 256 / (forward 256 + bare step)"),
)

_ROWS = (
    ("fit", "`model.fit` (uniform)"),
    ("importance_256", "`ImportanceTraining`, presample 256"),
    ("importance_1024", "`ImportanceTraining`, presample 1024"),
    ("approximate", "`ApproximateImportanceTraining`"),
    ("fit_spe8", "`model.fit`, `steps_per_execution=8`"),
    ("importance_256_spe8", "`ImportanceTraining`, presample 256, `steps_per_execution=8`"),
    ("arithmetic_256", "arithmetic: forward 256 + bare step"),
    ("arithmetic_1024", "arithmetic: forward 1024 + bare step"),
)


def _verdict(value, limit):
    if value <= limit:
        return "met"
    return f"missed by {100 * (value / limit - 1):.1f} %"


def _traces(counts):
    return ", ".join(f"{name} {count}" for name, count in sorted(counts.items())) or "n/a"


def speed_table(model_name, speed, memory=None):
    """The per-step table of one model, then its targets."""
    step_ms = speed["step_ms"]
    lines = [
        f"### {model_name}",
        "",
        "| variant | ms / step | x `model.fit` | traces after round 1 | traces at the end "
        "| peak RSS (MiB) | x `model.fit` RSS |",
        "|---|---:|---:|---|---|---:|---:|",
    ]
    for key, label in _ROWS:
        first = speed["trace_counts"]["first_round"].get(key)
        last = speed["trace_counts"]["last_round"].get(key)
        rss = memory["peak_rss_mb"].get(key) if memory else None
        rss_cells = "| |" if rss is None else f"| {rss:.0f} | {memory['ratio'][key]:.2f} |"
        lines.append(
            f"| {label} | {step_ms[key]:.2f} | {step_ms[key] / step_ms['fit']:.2f} "
            f"| {_traces(first) if first is not None else ''} "
            f"| {_traces(last) if last is not None else ''} {rss_cells}"
        )
    lines += ["", "| target | limit | measured | verdict |", "|---|---:|---:|---|"]
    for key, limit, label in TARGETS:
        value = speed["ratio"][key]
        lines.append(f"| {label} | {limit:.2f} | {value:.2f} | {_verdict(value, limit)} |")
    for key, label in REFERENCES:
        lines.append(f"| {label} | | {speed['ratio'][key]:.2f} | for reference |")
    retraced = [v for v, counts in speed["trace_counts"]["last_round"].items()
                if counts != speed["trace_counts"]["first_round"][v]]
    lines.append(f"| no retracing after round 1 | 0 | {len(retraced)} "
                 f"| {'met' if not retraced else 'missed: ' + ', '.join(retraced)} |")
    if memory:
        worst = max(r for v, r in memory["ratio"].items() if v != "fit")
        lines.append(f"| peak RSS / `model.fit` (worst variant) | {MEMORY_LIMIT:.2f} "
                     f"| {worst:.2f} | {_verdict(worst, MEMORY_LIMIT)} |")
    return "\n".join(lines)


def backend_table(rows):
    """Presample 256 against `model.fit` on each Keras backend.

    Args:
        rows: A dict from backend name to its results, each a dict from
            model name to `{"step_ms": {"fit": ..., "importance_256": ...},
            "ratio": ...}`.
    """
    lines = [
        "| backend | model | `model.fit` ms / step | `ImportanceTraining` ms / step "
        "| x `model.fit` |",
        "|---|---|---:|---:|---:|",
    ]
    for backend, models in rows.items():
        for name, result in models.items():
            step_ms = result["step_ms"]
            lines.append(
                f"| {backend} | {name} | {step_ms['fit']:.2f} "
                f"| {step_ms['importance_256']:.2f} | {result['ratio']:.2f} |"
            )
    return "\n".join(lines)

