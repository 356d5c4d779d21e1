"""Fixed-rate control loop with per-phase timestamps and a cadence report.

    loop = ControlLoop(15.0)
    while recording:
        t = loop.begin()                 # step_start; waits for the step's deadline first
        ... observe ...;  loop.mark("observe_end")
        ... device/policy ...; loop.mark("policy_end")
        ... send ...;     loop.mark("action_sent")
        ... record ...;   loop.end()     # step_end; the step's phase times go to loop.times
    report = loop.report()               # achieved Hz, overruns, worst step, per-phase means

Deadlines are absolute (start + k * period): a late step does not shift later ones, and an overrun (a step
that ends after its deadline) is counted, never hidden. After an overrun the schedule restarts from now, so
the loop does not burst to catch up.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from robolearn.data.schema import CONTROL_PHASES


@dataclass
class ControlLoop:
    hz: float
    clock: object = time.monotonic_ns
    sleep: object = time.sleep
    times: dict[str, int] = field(default_factory=dict)  # the current step's phase timestamps [ns]
    _periods: list[int] = field(default_factory=list)
    _phases: dict[str, list[int]] = field(default_factory=dict)
    _work: list[int] = field(default_factory=list)
    _deadline: int | None = None
    _last_start: int | None = None
    overruns: int = 0

    def __post_init__(self) -> None:
        if not self.hz > 0:
            raise ValueError(f"control rate must be > 0 Hz, got {self.hz}")
        self.period_ns = int(round(1e9 / self.hz))

    def begin(self) -> dict[str, int]:
        """Wait for this step's deadline, then stamp step_start."""
        now = self.clock()
        if self._deadline is not None and now < self._deadline:
            self.sleep((self._deadline - now) / 1e9)
            now = self.clock()
        if self._last_start is not None:
            self._periods.append(now - self._last_start)
        self._last_start = now
        if self._deadline is None or now > self._deadline + self.period_ns:
            self._deadline = now  # first step, or we fell a whole period behind: restart the schedule
        self._deadline += self.period_ns
        self.times = {"step_start": now}
        return self.times

    def mark(self, phase: str) -> int:
        if phase not in CONTROL_PHASES:
            raise ValueError(f"unknown control phase {phase!r}; expected one of {CONTROL_PHASES}")
        t = self.clock()
        self.times[phase] = t
        return t

    def end(self) -> dict[str, int]:
        """Stamp step_end, fill missing phases with the previous stamp, book the step."""
        t = self.mark("step_end")
        prev = self.times["step_start"]
        for p in CONTROL_PHASES:
            self.times.setdefault(p, prev)
            prev = self.times[p]
        for a, b in zip(CONTROL_PHASES, CONTROL_PHASES[1:]):
            self._phases.setdefault(b, []).append(self.times[b] - self.times[a])
        self._work.append(t - self.times["step_start"])
        if self._deadline is not None and t > self._deadline:
            self.overruns += 1
        return dict(self.times)

    def periods_ms(self) -> np.ndarray:
        """Measured step-start to step-start periods since the last reset_stats() [ms]."""
        return np.asarray(self._periods, dtype=np.float64) / 1e6

    def reset_stats(self) -> None:
        self._periods.clear()
        self._phases.clear()
        self._work.clear()
        self.overruns = 0
        self._deadline = None
        self._last_start = None

    def report(self) -> dict:
        """Cadence report: achieved rate, loop period quantiles, overruns, worst step, per-phase means."""
        periods = np.asarray(self._periods, dtype=np.float64) / 1e6
        work = np.asarray(self._work, dtype=np.float64) / 1e6
        steps = len(self._work)
        out = {
            "target_hz": self.hz,
            "steps": steps,
            "overruns": self.overruns,
            "achieved_hz": float(1000.0 / periods.mean()) if periods.size else None,
            "period_ms_p50": float(np.percentile(periods, 50)) if periods.size else None,
            "period_ms_p99": float(np.percentile(periods, 99)) if periods.size else None,
            "period_ms_max": float(periods.max()) if periods.size else None,
            "worst_step_ms": float(work.max()) if work.size else None,
            "mean_step_ms": float(work.mean()) if work.size else None,
            "headroom": float(1.0 - work.mean() / (self.period_ns / 1e6)) if work.size else None,
            "phase_ms_mean": {p: float(np.mean(v) / 1e6) for p, v in self._phases.items()},
            "phase_ms_max": {p: float(np.max(v) / 1e6) for p, v in self._phases.items()},
        }
        return out


def format_report(r: dict) -> str:
    """One human line: 'cadence 14.98/15 Hz, p99 67.1 ms, 0 overruns, worst step 12.3 ms (observe 4.1 ...)'."""
    if not r.get("steps"):
        return "cadence: no steps"
    phases = ", ".join(f"{p.removesuffix('_end').removesuffix('_sent')} {v:.1f}" for p, v in r["phase_ms_mean"].items())
    hz = f"{r['achieved_hz']:.2f}" if r["achieved_hz"] else "-"
    p99 = f"{r['period_ms_p99']:.1f}" if r["period_ms_p99"] is not None else "-"
    return (
        f"cadence {hz}/{r['target_hz']:g} Hz over {r['steps']} steps, period p99 {p99} ms, "
        f"{r['overruns']} overruns, worst step {r['worst_step_ms']:.1f} ms (mean ms: {phases})"
    )
