"""The public health history behind the status page: each component's state and its incidents.

Readiness checks feed :meth:`HealthHistory.observe` with one public state per component; a
component that leaves ``operational`` opens an incident, which ends when it is operational
again. Only the three public states, the component names and times are kept, never a check's
error text, so nothing the status page shows can reveal a host, a URL or a version. The
history is in memory and bounded: it starts empty when the node does.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum


class State(IntEnum):
    """A component's public state, ordered from best to worst."""

    OPERATIONAL = 0
    DEGRADED = 1
    DOWN = 2

    @property
    def label(self) -> str:
        """The state's name on the wire: ``operational``, ``degraded`` or ``down``."""
        return self.name.lower()


@dataclass
class Incident:
    """A stretch of time in which one component was not operational."""

    component: str
    started_at: float
    worst: State
    ended_at: float | None = None

    def public(self) -> dict[str, object]:
        """The incident as the status page shows it (times in Unix seconds)."""
        return {
            "component": self.component,
            "state": self.worst.label,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
        }


class HealthHistory:
    """Current state per component and the most recent incidents, newest first."""

    def __init__(self, max_incidents: int = 50, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._states: dict[str, State] = {}
        self._open: dict[str, Incident] = {}
        self._incidents: deque[Incident] = deque(maxlen=max_incidents)

    def observe(self, states: Mapping[str, State]) -> None:
        """Record one round of checks; a component not named keeps its last state."""
        now = self._clock()
        for component, state in states.items():
            self._states[component] = state
            incident = self._open.get(component)
            if state is State.OPERATIONAL:
                if incident is not None:
                    incident.ended_at = now
                    del self._open[component]
            elif incident is None:
                incident = Incident(component, now, state)
                self._open[component] = incident
                self._incidents.appendleft(incident)
            else:
                incident.worst = max(incident.worst, state)

    @property
    def states(self) -> dict[str, State]:
        """The last observed state of every component seen so far."""
        return dict(self._states)

    @property
    def overall(self) -> State:
        """The worst component state (operational before any observation)."""
        return max(self._states.values(), default=State.OPERATIONAL)

    @property
    def incidents(self) -> list[Incident]:
        """Recent incidents, newest first; an ongoing one has no ``ended_at``."""
        return list(self._incidents)
