"""Figures of a run: per-cell results, the gateway-vs-direct table, and the issue's targets as PASS/FAIL."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from formats import BASELINE

BUSY_CORES = 0.25
"""CPU of processes outside the bench, in cores, above which a cell is flagged as noisy."""


@dataclass(slots=True)
class CellResult:
    """One measured cell: a target (``gateway``/``direct``), a concurrency, a mode and a wire format."""

    target: str
    concurrency: int
    mode: str  # "json" | "stream" | "mixed" (the long run)
    fmt: str  # "openai" | "anthropic" | "both"
    ok: int
    errors: int
    elapsed_s: float
    rps: float
    p50_ms: float
    p99_ms: float
    ttfb_p50_ms: float
    ttfb_p99_ms: float
    server_cpu_ms_per_req: float  # the gateway's for gateway cells, the mock's for direct cells
    mock_cpu_ms_per_req: float
    loadgen_cpu_ms_per_req: float
    other_cpu_cores: float  # busy CPU of processes outside the bench, in cores: > 0.1 means a noisy run
    server_rss_mb: float
    error_samples: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[int, str, str]:
        return self.concurrency, self.mode, self.fmt


@dataclass(slots=True)
class LongRun:
    """The RSS-growth run: RSS of the gateway sampled every 1,000 requests."""

    requests: int
    baseline_at: int
    rss_baseline_mb: float
    rss_end_mb: float
    peak_rss_mb: float
    samples: list[tuple[int, float]]
    cell: CellResult | None

    @property
    def growth_pct(self) -> float:
        return 100 * (self.rss_end_mb - self.rss_baseline_mb) / self.rss_baseline_mb


@dataclass(frozen=True, slots=True)
class Verdict:
    """One target of the issue, checked (``passed`` is ``None`` when the run had no data for it)."""

    target: str
    passed: bool | None
    detail: str


def _num(value: float, digits: int = 2, sign: bool = False) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


HEAD = (
    f"{'':23}{'n':>7}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'ttfb50':>9}{'ttfb99':>9}{'errors':>8}"
    f"{'srv cpu':>9}{'lg cpu':>8}{'other':>7}"
)


def row(label: str, cell: CellResult) -> str:
    """One line of figures, under :data:`HEAD`."""
    return (
        f"  {label:21}{cell.ok + cell.errors:7d}{cell.rps:8.0f}{_num(cell.p50_ms):>9}{_num(cell.p99_ms):>9}"
        f"{_num(cell.ttfb_p50_ms):>9}{_num(cell.ttfb_p99_ms):>9}{cell.errors:8d}"
        f"{_num(cell.server_cpu_ms_per_req, 3):>9}{_num(cell.loadgen_cpu_ms_per_req, 3):>8}"
        f"{_num(cell.other_cpu_cores):>7}"
    )


def _versus(name: str, gateway: CellResult, other: CellResult) -> str:
    """The gateway against another row of its cell: throughput ratio, added latency and TTFB, and the CPU per
    request of each."""
    stream = other.mode == "stream"
    ratio = gateway.rps / other.rps if other.rps else math.nan
    ttfb50 = gateway.ttfb_p50_ms - other.ttfb_p50_ms if stream else math.nan
    ttfb99 = gateway.ttfb_p99_ms - other.ttfb_p99_ms if stream else math.nan
    return (
        f"  {'gateway vs ' + name:28}{'×' + _num(ratio):>8}"
        f"{_num(gateway.p50_ms - other.p50_ms, sign=True):>9}"
        f"{_num(gateway.p99_ms - other.p99_ms, sign=True):>9}{_num(ttfb50, sign=True):>9}"
        f"{_num(ttfb99, sign=True):>9}"
        f"   cpu {_num(gateway.server_cpu_ms_per_req, 3)} vs {_num(other.server_cpu_ms_per_req, 3)} ms/req"
    )


def cell_table(gateway: CellResult | None, direct: CellResult, others: Sequence[CellResult] = ()) -> str:
    """The lines of one cell: gateway, the yardsticks (pass-through, peers), direct, and the gateway
    against each of them."""
    lines = [f"c={direct.concurrency} {direct.mode} {direct.fmt}".ljust(23) + HEAD[23:]]
    if gateway is not None:
        lines.append(row("gateway", gateway))
    lines += [row(other.target, other) for other in others]
    lines.append(row("direct (mock)", direct))
    if gateway is not None:
        lines += [_versus(other.target, gateway, other) for other in others]
        lines.append(_versus("direct", gateway, direct))
    for cell in (gateway, *others, direct):
        if cell is not None:
            lines += [f"  ! {cell.target}: {sample}" for sample in cell.error_samples[:2]]
    return "\n".join(lines)


def scaled_row(cell: CellResult, instances: int) -> str:
    """One cell of the scaled shape alone (its direct figures are the embedded shape's table's)."""
    label = f"c={cell.concurrency} {cell.mode} {cell.fmt}".ljust(23) + HEAD[23:]
    return f"{label}\n{row(f'scaled ×{instances}', cell)}" + "".join(
        f"\n  ! scaled: {sample}" for sample in cell.error_samples[:2]
    )


def shape_comparison(
    embedded: dict[tuple[int, str, str], CellResult],
    scaled: dict[tuple[int, str, str], CellResult],
    instances: int,
) -> str:
    """The two shapes side by side, cell by cell: throughput, latency and gateway CPU per request (the
    scaled shape's summed over its instances; PostgreSQL's and Redis's own CPU is in neither)."""
    lines = [
        f"embedded (1 process, SQLite) vs scaled ({instances} processes, PostgreSQL, Redis):",
        f"  {'cell':21}{'req/s':>14}{'p50 ms':>16}{'p99 ms':>16}{'cpu ms/req':>16}{'errors':>12}",
        f"  {'':21}{'emb / scaled':>14}{'emb / scaled':>16}{'emb / scaled':>16}{'emb / scaled':>16}"
        f"{'emb / sc':>12}",
    ]
    for key in sorted(scaled):
        one, many = embedded.get(key), scaled[key]

        def pair(value: float | None, other: float, digits: int) -> str:
            left = "-" if value is None else _num(value, digits)
            return f"{left} / {_num(other, digits)}"

        concurrency, mode, fmt = key
        lines.append(
            f"  {f'c={concurrency} {mode} {fmt}':21}"
            f"{pair(one.rps if one else None, many.rps, 0):>14}"
            f"{pair(one.p50_ms if one else None, many.p50_ms, 2):>16}"
            f"{pair(one.p99_ms if one else None, many.p99_ms, 2):>16}"
            f"{pair(one.server_cpu_ms_per_req if one else None, many.server_cpu_ms_per_req, 3):>16}"
            f"{(str(one.errors) if one else '-') + ' / ' + str(many.errors):>12}"
        )
    return "\n".join(lines)


LEGEND = (
    "n = measured requests; latencies in ms, from writing the request to its last body byte; ttfb = to\n"
    "the first *body* byte (streams only); srv cpu = CPU ms per request of the gateway process (gateway\n"
    "rows), of the mock (direct rows) or of the pass-through or peer (theirs); lg cpu = the load\n"
    "generator's; gateway vs X = its throughput ÷ X's, its latency over X's; other = cores kept busy by\n"
    "processes outside the bench during the cell (above ~0.25 the machine was shared: noisy figures)."
)


def _check(
    verdicts: list[Verdict], name: str, value: float | None, limit: float, unit: str, *, low: bool
) -> None:
    if value is None or math.isnan(value):
        verdicts.append(Verdict(name, None, "no data"))
        return
    passed = value <= limit if low else value >= limit
    bound = "≤" if low else "≥"
    verdicts.append(Verdict(name, passed, f"{value:.3f} {unit} (target {bound} {limit:g})"))


def check_targets(
    gateway: dict[tuple[int, str, str], CellResult],
    direct: dict[tuple[int, str, str], CellResult],
    long_run: LongRun | None,
    formats: list[str],
    yardsticks: dict[tuple[int, str, str], list[CellResult]] | None = None,
) -> list[Verdict]:
    """The issue's targets, in its order (issue 4's, then issue 26's throughput against the pass-through
    at concurrency 32, measured in the same run)."""
    verdicts: list[Verdict] = []
    yardsticks = yardsticks or {}

    def added(key: tuple[int, str, str], attr: str) -> float | None:
        if key not in gateway or key not in direct:
            return None
        return float(getattr(gateway[key], attr)) - float(getattr(direct[key], attr))

    for fmt in formats:
        _check(verdicts, f"c=1 json {fmt}: added p50", added((1, "json", fmt), "p50_ms"), 1, "ms", low=True)
        _check(verdicts, f"c=1 json {fmt}: added p99", added((1, "json", fmt), "p99_ms"), 3, "ms", low=True)
        ttfb = added((1, "stream", fmt), "ttfb_p50_ms")
        _check(verdicts, f"c=1 stream {fmt}: added TTFB p50", ttfb, 1, "ms", low=True)
    for fmt in formats:  # issue 26: the chat hot path at concurrency 1, tighter than issue 4's lines
        for mode in ("json", "stream"):
            key = (1, mode, fmt)
            cpu = gateway[key].server_cpu_ms_per_req if key in gateway else None
            _check(verdicts, f"c=1 {mode} {fmt}: CPU per request (issue 26)", cpu, 0.5, "ms", low=True)
            _check(
                verdicts, f"c=1 {mode} {fmt}: added p50 (issue 26)", added(key, "p50_ms"), 0.5, "ms", low=True
            )
    for fmt in formats:
        for mode, floor in (("json", 1500), ("stream", 1000)):
            cell = gateway.get((32, mode, fmt))
            _check(
                verdicts,
                f"c=32 {mode} {fmt}: throughput",
                cell.rps if cell else None,
                floor,
                "req/s",
                low=False,
            )
            passthrough = next(
                (c for c in yardsticks.get((32, mode, fmt), []) if c.target == "pass-through"), None
            )
            ratio = cell.rps / passthrough.rps if cell and passthrough and passthrough.rps else None
            versus = f" ({cell.rps:.0f} / {passthrough.rps:.0f} req/s)" if cell and passthrough else ""
            name = f"c=32 {mode} {fmt}: throughput vs the pass-through{versus}"
            _check(verdicts, name, ratio, 0.6, "×", low=False)
    at_128 = [cell for key, cell in sorted(gateway.items()) if key[0] == 128]
    if at_128:
        errors = sum(cell.errors for cell in at_128)
        per_cell = ", ".join(f"{c.mode}/{c.fmt} {c.errors}" for c in at_128)
        verdicts.append(Verdict("c=128: zero errors", errors == 0, f"{errors} errors ({per_cell})"))
    else:
        verdicts.append(Verdict("c=128: zero errors", None, "no data"))
    for mode, limit in (("json", 0.8), ("stream", 1.2)):
        cells = [cell for key, cell in gateway.items() if key[1] == mode]
        worst = max(cells, key=lambda cell: cell.server_cpu_ms_per_req, default=None)
        name = f"CPU per request, {mode} (worst cell" + (
            f": c={worst.concurrency} {worst.fmt})" if worst else ")"
        )
        _check(verdicts, name, worst.server_cpu_ms_per_req if worst else None, limit, "ms", low=True)
    for (concurrency, mode, fmt), cell in sorted(gateway.items()):
        # the model called in its own format; a Responses cell's chat completions or messages cell
        own = gateway.get((concurrency, mode, BASELINE.get(fmt, fmt.partition("->")[2])))
        if own is None:
            continue
        cpu = cell.server_cpu_ms_per_req - own.server_cpu_ms_per_req
        if fmt == "responses":  # the native passthrough: within 10 % of chat completions (issue 23)
            name = f"c={concurrency} {mode} responses (native): CPU vs chat completions"
            detail = f"{cell.server_cpu_ms_per_req:.3f} vs {own.server_cpu_ms_per_req:.3f} ms"
            ratio = cpu / own.server_cpu_ms_per_req * 100 if own.server_cpu_ms_per_req else None
            _check(verdicts, f"{name} ({detail})", ratio, 10, "%", low=True)
        else:
            name = f"c={concurrency} {mode} {fmt}: CPU added by translation"
            _check(verdicts, name, cpu, 0.3, "ms", low=True)
    if long_run is None:
        verdicts.append(Verdict("peak RSS", None, "no data"))
        verdicts.append(Verdict("RSS growth", None, "no data"))
    else:
        _check(verdicts, "peak RSS (VmHWM)", long_run.peak_rss_mb, 150, "MB", low=True)
        name = f"RSS growth, request {long_run.baseline_at:,} → {long_run.requests:,}"
        if long_run.requests < 100_000:
            name += " (issue: 10,000 → 100,000; use --long 100000)"
        _check(verdicts, name, long_run.growth_pct, 10, "%", low=True)
        if long_run.cell is not None and long_run.cell.errors:
            verdicts.append(Verdict("long run: zero errors", False, f"{long_run.cell.errors} errors"))
    return verdicts


def verdict_lines(verdicts: list[Verdict]) -> str:
    """The targets as PASS / FAIL / SKIP lines."""
    words = {True: "PASS", False: "FAIL", None: "SKIP"}
    return "\n".join(f"  {words[v.passed]}  {v.target}: {v.detail}" for v in verdicts)


@dataclass(slots=True)
class Figures:
    """Everything a run measured, keyed by (concurrency, mode, format)."""

    gateway: dict[tuple[int, str, str], CellResult]
    direct: dict[tuple[int, str, str], CellResult]
    long: LongRun | None
    yardsticks: dict[tuple[int, str, str], list[CellResult]] = field(default_factory=dict)
    """The rows measured beside the gateway in each cell: the pass-through, then the peers."""


def summarize(figures: Figures, gateway_log: Path) -> None:
    """The long run, a warning for a shared machine, and what the gateway logged (WARNING and up)."""
    long = figures.long
    if long is not None:
        print(
            f"gateway RSS: {long.rss_baseline_mb:.1f} MB at request {long.baseline_at:,}, "
            f"{long.rss_end_mb:.1f} MB at {long.requests:,} ({long.growth_pct:+.1f} %), "
            f"peak {long.peak_rss_mb:.1f} MB"
        )
        if long.cell is not None:
            print(f"{'long run (mixed)':23}{HEAD[23:]}\n{row('gateway', long.cell)}")
    cells = [*figures.gateway.values(), *figures.direct.values()]
    cells += [cell for rows in figures.yardsticks.values() for cell in rows]
    busy = [cell for cell in cells if cell.other_cpu_cores > BUSY_CORES]
    if busy:
        worst = max(cell.other_cpu_cores for cell in busy)
        print(
            f"\nWARNING: other processes kept up to {worst:.2f} cores busy during {len(busy)} of "
            f"{len(cells)} cells: the machine was shared, figures are noisy; rerun it idle to record them."
        )
    if gateway_log.exists() and (lines := gateway_log.read_text(errors="replace").splitlines()):
        print(f"\nthe gateway logged {len(lines)} line(s) at WARNING and up; the last:")
        print("\n".join(f"  {line[:300]}" for line in lines[-5:]))


def json_safe(value: object) -> object:
    """``value`` with every NaN (a figure a cell does not have, e.g. TTFB of JSON replies) as ``null``."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value
