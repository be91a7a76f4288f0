"""Every figure, its reference and its target; the table and the JSON.

A figure's ``value`` is the p50 of a distribution, or the measured value; its
``ratio`` is ``value / reference value``, both from the same run (a
reference figure is compared with the baseline of its kind). Lower is better
for times, memory and CPU; higher for rates. Targets are the project's goals
(issue 7): a ratio bound against a reference, or an absolute bound.

``python -m bench.report results.json`` prints the Markdown table of a saved run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

__all__ = ["FIGURES", "Figure", "Target", "build", "markdown", "table"]

DEPTHS = (1, 10, 100, 1000)
PAYLOADS = ("100B", "10KB", "1MB")


@dataclasses.dataclass(frozen=True)
class Target:
    """A goal: ``ratio`` (against ``against``) or the value itself, bounded above or below."""

    text: str
    bound: float
    against: str | None = None
    upper: bool = True

    def check(
        self, value: float | None, ratios: dict[str, float | None]
    ) -> tuple[float | None, bool | None]:
        """The current figure this target looks at, and whether it is met (None: unknown)."""
        current = ratios.get(self.against) if self.against else value
        if current is None:
            return None, None
        return current, current <= self.bound if self.upper else current >= self.bound


#: Figure key prefix -> group.
_GROUPS = {
    "raw": "raw",
    "pipe": "references",
    "pykka": "references",
    "thespian": "references",
    "ray": "ray",
    "lat": "latency",
    "tput": "throughput",
    "noack": "noack",
    "spawn": "spawn",
    "scale": "scale",
    "payload": "payloads",
}


@dataclasses.dataclass(frozen=True)
class Figure:
    """One line of the report: compared with ``ref`` (and ``also``), checked against ``targets``."""

    key: str
    label: str
    unit: str
    ref: str
    also: tuple[str, ...] = ()
    targets: tuple[Target, ...] = ()

    @property
    def group(self) -> str:
        """The group that measures it."""
        return _GROUPS[self.key.split(".")[0]]

    @property
    def higher_is_better(self) -> bool:
        """True for rates."""
        return self.unit == "msg/s"


# unit -> factor from the stored value (seconds, bytes, %, msg/s)
_SCALE = {"us": 1e6, "ms": 1e3, "msg/s": 1.0, "KiB": 1 / 1024, "% core": 1.0}
_1000 = "raw.stream_d1000"

# The catalogue reads as a table: keep it one figure per line or two.
# fmt: off
F = Figure
FIGURES: list[Figure] = [
    # References: each compared with the raw gRPC baseline of its kind (or itself).
    F("raw.bidi_rtt", "raw gRPC bidi-stream ping-pong", "us", "raw.bidi_rtt"),
    F("raw.unary_rtt", "raw gRPC unary round trip", "us", "raw.bidi_rtt"),
    *(F(f"raw.stream_d{d}", f"raw gRPC stream, {d} in flight", "msg/s", "raw.stream_d100")
      for d in DEPTHS),
    *(F(f"raw.payload_{p}", f"raw gRPC bidi ping-pong, {p}", "us", "raw.bidi_rtt")
      for p in PAYLOADS),
    F("raw.server_start_inproc", "raw grpc.aio server start until it answers (in process)", "ms",
      "raw.server_start_inproc"),
    F("raw.server_start_cold", "raw grpc.aio server, new interpreter until it answers", "ms",
      "raw.server_start_cold"),
    F("raw.notify_cpu_per100", "raw gRPC server CPU per 100 unary calls/s of 1.5 KB", "% core",
      "raw.notify_cpu_per100"),
    F("pipe.rtt", "multiprocessing.Pipe round trip", "us", "raw.bidi_rtt"),
    F("pipe.rate_d100", "multiprocessing.Pipe, 100 in flight", "msg/s", "raw.stream_d100"),
    F("pykka.ask_rtt", "pykka ask (thread to actor thread)", "us", "raw.bidi_rtt"),
    F("pykka.rate_d100", "pykka ask, 100 in flight", "msg/s", "raw.stream_d100"),
    F("pykka.start", "pykka actor start until it answers", "ms", "pykka.start"),
    F("pykka.memory_per_actor", "pykka memory per actor (RSS growth)", "KiB",
      "pykka.memory_per_actor"),
    F("thespian.ask_rtt", "Thespian ask (TCP, actor process)", "us", "raw.bidi_rtt"),
    F("thespian.rate_d100", "Thespian tell/listen, 100 in flight", "msg/s", "raw.stream_d100"),
    F("thespian.create", "Thespian createActor until it answers", "ms", "thespian.create"),
    F("thespian.memory_per_actor", "Thespian memory per actor process (RSS)", "KiB",
      "thespian.memory_per_actor"),
    # 1. Round trips
    F("lat.client_unary", "outside client -> process actor, unary Mailbox.Send", "us",
      "raw.unary_rtt"),
    F("lat.client_stream", "outside client -> process actor, Mailbox.Stream ping-pong", "us",
      "raw.bidi_rtt"),
    F("lat.arbiter_process_plain", "arbiter -> process actor, send() from plain code", "us",
      "raw.bidi_rtt"),
    F("lat.arbiter_process_async", "arbiter -> process actor, await send() in a command", "us",
      "raw.bidi_rtt"),
    # The references measured again, in turns with the figures they judge (bench.paired).
    F("lat.raw_bidi_paired", "raw gRPC bidi ping-pong, in turns with the next line", "us",
      "raw.bidi_rtt"),
    F("lat.process_process", "process actor -> process actor", "us", "lat.raw_bidi_paired",
      also=("raw.bidi_rtt", "ray.call_rtt", "thespian.ask_rtt"),
      targets=(Target("<= 1.2x raw gRPC bidi ping-pong", 1.2, "lat.raw_bidi_paired"),)),
    F("lat.pykka_paired", "pykka ask, in turns with the next line", "us", "pykka.ask_rtt"),
    F("lat.thread_thread", "thread actor -> thread actor (one process)", "us", "lat.pykka_paired",
      also=("pykka.ask_rtt",),
      targets=(Target("<= 2x pykka ask", 2.0, "lat.pykka_paired"),)),
    F("lat.arbiter_thread_plain", "plain code -> thread actor (one process)", "us",
      "pykka.ask_rtt"),
    # 2. Throughput
    *(F(f"tput.process_d{d}", f"process -> process actor, {d} in flight", "msg/s",
        f"raw.stream_d{d}")
      for d in DEPTHS[:-1]),
    F("tput.process_d1000", "process -> process actor, 1000 in flight", "msg/s", _1000,
      targets=(Target(">= 5x raw gRPC stream at 1,000 in flight", 5.0, _1000, upper=False),)),
    *(F(f"tput.client_d{d}", f"outside stream client -> process actor, {d} in flight", "msg/s",
        f"raw.stream_d{d}")
      for d in DEPTHS),
    F("tput.senders", "8 process actors -> one actor, 100 in flight each", "msg/s",
      "raw.stream_d100"),
    F("tput.pykka_paired", "pykka ask, 100 in flight, in turns with the next line", "msg/s",
      "pykka.rate_d100"),
    F("tput.thread_d100", "thread -> thread actor, 100 in flight", "msg/s", "tput.pykka_paired",
      also=("pykka.rate_d100",),
      targets=(Target(">= 0.5x pykka ask throughput", 0.5, "tput.pykka_paired", upper=False),)),
    # 3. No-ack
    F("noack.process", "no-ack commands process -> process, counted at the receiver", "msg/s",
      _1000),
    # 4. Spawning
    F("spawn.process", "spawn a process actor until it answers", "ms", "thespian.create",
      also=("ray.create",), targets=(Target("<= 50 ms (p50)", 50.0),)),
    F("spawn.thread", "spawn a thread actor until it answers", "ms", "pykka.start",
      targets=(Target("<= 2 ms (p50)", 2.0),)),
    F("spawn.process_batch", "spawn 50 process actors at once, per actor", "ms",
      "thespian.create"),
    F("spawn.thread_batch", "spawn 50 thread actors at once, per actor", "ms", "pykka.start"),
    F("spawn.arbiter_inproc", "arbiter start until it answers (in process)", "ms",
      "raw.server_start_inproc", targets=(Target("<= 300 ms", 300.0),)),
    F("spawn.arbiter_cold", "python -m actorgrpc run until it answers (new interpreter)", "ms",
      "raw.server_start_cold", targets=(Target("<= 300 ms", 300.0),)),
    # 5. Scale
    F("scale.memory_thread", "memory per thread actor (RSS growth, 1,000 actors)", "KiB",
      "pykka.memory_per_actor"),
    F("scale.memory_process", "memory per process actor (RSS)", "KiB",
      "thespian.memory_per_actor"),
    F("scale.cpu_idle_per100", "arbiter CPU per 100 idle process actors", "% core",
      "raw.notify_cpu_per100", targets=(Target("<= 1% of a core", 1.0),)),
    F("scale.cpu_tree_per100", "arbiter process CPU per 100 actors (1,000 threads + 50)",
      "% core", "raw.notify_cpu_per100", targets=(Target("<= 1% of a core", 1.0),)),
    F("scale.info_tree", "Supervisor.Info over the whole tree", "ms", "raw.unary_rtt"),
    # 6. Payloads
    *(F(f"payload.{p}", f"process -> process actor echo, {p}", "us", f"raw.payload_{p}")
      for p in PAYLOADS),
    # Ray, measured last (bench.latency.run_ray).
    F("ray.call_rtt", "Ray actor call", "us", "raw.bidi_rtt"),
    F("ray.rate_d100", "Ray actor calls, 100 in flight", "msg/s", "raw.stream_d100"),
    F("ray.create", "Ray actor creation until it answers", "ms", "ray.create"),
    F("ray.process_process", "process actor -> process actor, just before Ray's figures", "us",
      "ray.call_rtt", targets=(Target("<= 0.5x Ray actor call", 0.5, "ray.call_rtt"),)),
]
del F
# fmt: on


def _value(record: dict[str, Any] | None) -> float | None:
    if not record:
        return None
    value = record.get("p50", record.get("value"))
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def _ratio(value: float | None, ref: float | None) -> float | None:
    if value is None or ref is None or ref == 0:
        return None
    return value / ref


def build(results: dict[str, dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    """The JSON document: every figure with value, ratio, references and targets."""
    figures: dict[str, Any] = {}
    for fig in FIGURES:
        record = results.get(fig.key)
        scale = _SCALE[fig.unit]
        raw_value = _value(record)
        ratios = {key: _ratio(raw_value, _value(results.get(key))) for key in (fig.ref, *fig.also)}
        for target in fig.targets:
            if target.against and target.against not in ratios:
                ratios[target.against] = _ratio(raw_value, _value(results.get(target.against)))
        value = None if raw_value is None else raw_value * scale
        entry: dict[str, Any] = {
            "label": fig.label,
            "group": fig.group,
            "unit": fig.unit,
            "value": value,
            "p50": value if record and "p50" in record else None,
            "p99": record["p99"] * scale if record and record.get("p99") is not None else None,
            "n": record.get("n") if record else None,
            "ref": fig.ref,
            "ratio": ratios[fig.ref],
            "ratios": ratios,
            "higher_is_better": fig.higher_is_better,
            "targets": [],
            "skipped": record.get("skipped") if record else None,
            "missing": record is None,
            "detail": {
                k: v
                for k, v in (record or {}).items()
                if k not in ("p50", "p99", "value", "skipped")
            },
        }
        for target in fig.targets:
            current, met = target.check(value, ratios)
            entry["targets"].append(
                {"text": target.text, "against": target.against, "current": current, "met": met}
            )
        figures[fig.key] = entry
    return {"meta": meta, "figures": figures}


# -- rendering ------------------------------------------------------------------------


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    ax = abs(x)
    if ax >= 10_000:
        return f"{x:,.0f}"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def _ratio_text(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def _target_text(entry: dict[str, Any]) -> str:
    parts = []
    for t in entry["targets"]:
        mark = {True: "met", False: "NOT met", None: "n/a"}[t["met"]]
        parts.append(f"{t['text']}: {mark}")
    return "; ".join(parts)


def _rows(doc: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for key, e in doc["figures"].items():
        if e["missing"]:
            value = "MISSING"
        elif e["skipped"]:
            value = "skipped"
        else:
            value = f"{_num(e['value'])} {e['unit']}"
        p99 = f"{_num(e['p99'])}" if e["p99"] is not None else ""
        rows.append(
            (
                e["group"],
                key,
                e["label"],
                value,
                p99,
                e["ref"],
                _ratio_text(e["ratio"]),
                _target_text(e),
            )
        )
    return rows


def table(doc: dict[str, Any]) -> str:
    """The plain-text table printed at the end of a run."""
    header = ("figure", "value (p50)", "p99", "vs", "ratio", "target")
    lines = []
    rows = _rows(doc)
    widths = [max(len(header[i]), *(len(r[i + 2]) for r in rows)) for i in range(5)]
    widths[0] = min(widths[0], 62)
    group = None
    fmt = "  ".join(f"{{:{'<' if i in (0, 3) else '>'}{w}}}" for i, w in enumerate(widths)) + "  {}"
    lines.append(fmt.format(*header))
    for g, _key, label, value, p99, ref, ratio, target in rows:
        if g != group:
            group = g
            lines.append(f"-- {g}")
        lines.append(fmt.format(label[:62], value, p99, ref, ratio, target))
    return "\n".join(lines)


def markdown(doc: dict[str, Any]) -> str:
    """The Markdown table of a run (docs/performance.md)."""
    out = [
        "| group | figure | value (p50) | p99 | compared with | ratio | target |",
        "|---|---|---:|---:|---|---:|---|",
    ]
    for g, _key, label, value, p99, ref, ratio, target in _rows(doc):
        out.append(f"| {g} | {label} | {value} | {p99} | `{ref}` | {ratio} | {target} |")
    return "\n".join(out)


def targets_markdown(doc: dict[str, Any]) -> str:
    """The targets alone, with their current state."""
    out = ["| figure | target | current | met |", "|---|---|---:|---|"]
    for e in doc["figures"].values():
        for t in e["targets"]:
            unit = "x" if t["against"] else f" {e['unit']}"
            current = "-" if t["current"] is None else f"{_num(t['current'])}{unit}"
            met = {True: "yes", False: "**no**", None: "n/a"}[t["met"]]
            out.append(f"| {e['label']} | {t['text']} | {current} | {met} |")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    """``python -m bench.report results.json``: Markdown tables of a saved run."""
    doc = json.loads(Path(argv[0] if argv else "bench/results.json").read_text())
    print(markdown(doc))
    print()
    print(targets_markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
