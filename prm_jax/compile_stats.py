"""How many XLA programs a piece of code compiles, and how long tracing, lowering and
compiling take, from JAX's monitoring events.

    with CompileStats() as stats:
        run_stage()
    stats.compiles, stats.seconds, stats.as_dict()

`compiles` counts backend (XLA) compilations; `seconds` adds the time spent tracing to a
jaxpr, lowering to StableHLO and compiling — the whole price of a new shape. Cache hits (a
shape seen before) cost nothing and are not counted.
"""

from __future__ import annotations

import collections
import threading

import jax.monitoring

BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"
_COMPILE_EVENTS = (BACKEND_COMPILE, "/jax/core/compile/jaxpr_trace_duration",
                   "/jax/core/compile/jaxpr_to_mlir_module_duration")


class CompileStats:
    """Context manager accumulating compile counts and seconds while it is open."""

    def __init__(self):
        self.compiles = 0
        self.seconds = 0.0
        # Backend compilations per jitted function ("jit(name)").
        self.by_function: collections.Counter = collections.Counter()
        self._lock = threading.Lock()

    def _listen(self, event: str, duration: float, **kwargs) -> None:
        if event in _COMPILE_EVENTS:
            with self._lock:
                self.seconds += duration
                if event == BACKEND_COMPILE:
                    self.compiles += 1
                    self.by_function[kwargs.get("fun_name", "?")] += 1

    def __enter__(self) -> "CompileStats":
        jax.monitoring.register_event_duration_secs_listener(self._listen)
        return self

    def __exit__(self, *exc) -> None:
        jax.monitoring.unregister_event_duration_listener(self._listen)

    def as_dict(self) -> dict:
        return {"compiles": self.compiles, "compile_seconds": round(self.seconds, 3)}
