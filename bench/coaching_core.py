"""State-machine transitions per second in the pure coaching core (controller/coaching.py):
replay and the sequencer both run every device fact and command through `transition`.

Feeds whole coached assemblies (the demo's eight-step Contactor Installation, every
action type but OCR entry: ML frames, scans, tightenings, signals, an output read back, OCR,
a dwell, a confirmation), plus the ML frames that do not complete a step (the common input at
30 fps). Baseline in the same run: the cheapest immutable update of the same state
(`msgspec.structs.replace` of one field), the floor any transition pays.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from _support.common import emit, machine, parse_args, ratio

from controller.coaching import CoachingState, Prediction, Start, Tick, transition
from sim.assemblies import CONTACTOR, completing_inputs

COMPLETING = completing_inputs()


def _assembly_inputs(record: str, t0: int) -> list[Any]:
    events: list[Any] = [Start(at_us=t0, record_id=record, assembly=CONTACTOR,
                               release_enabled=True)]
    now = t0
    for step in COMPLETING:
        for e in step:
            now += 2_500_000 if isinstance(e, Tick) else 100_000
            events.append(msgspec.structs.replace(e, at_us=now))
    return events


def _run(events: list[Any], state: CoachingState) -> tuple[CoachingState, int]:
    effects = 0
    for e in events:
        state, out = transition(state, e)
        effects += len(out)
    return state, effects


def main() -> None:
    args = parse_args(__doc__)
    assemblies = 2000 if args.quick else 20000
    inputs = [e for n in range(assemblies) for e in _assembly_inputs(f"r{n}", n * 60_000_000)]
    started = time.perf_counter()
    state, effects = _run(inputs, CoachingState())
    whole_s = time.perf_counter() - started
    assert state.outcome is not None and state.outcome.value == "ok", state

    # Frames that keep a step active: wrong label, then too low a confidence.
    active, _ = transition(CoachingState(), _assembly_inputs("f", 0)[0])
    frames = [Prediction(at_us=i, label="relay" if i % 2 else "contactor", confidence=0.3)
              for i in range(len(inputs))]
    started = time.perf_counter()
    _run(frames, active)
    frames_s = time.perf_counter() - started

    started = time.perf_counter()
    s = active
    for i in range(len(inputs)):
        s = msgspec.structs.replace(s, step_started_us=i)
    bare_s = time.perf_counter() - started

    per_s = len(inputs) / whole_s
    emit({
        "bench": "coaching_core", "machine": machine(), "quick": args.quick,
        "assemblies": assemblies, "inputs": len(inputs), "effects": effects,
        "transitions_per_s": round(per_s),
        "us_per_transition": round(whole_s / len(inputs) * 1e6, 2),
        "frames_per_s_step_active": round(len(frames) / frames_s),
        "baseline_bare_replace_per_s": round(len(inputs) / bare_s),
        "ratio_to_bare": ratio(whole_s, bare_s),
        "assemblies_per_s": round(assemblies / whole_s),
        "budget": None, "within_budget": None,
    })


if __name__ == "__main__":
    main()
