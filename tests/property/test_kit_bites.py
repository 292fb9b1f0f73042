"""Proof that the invariant machine bites: against each deliberately broken variant
(tests/kit/broken.py) hypothesis finds a counterexample, shrinks it to a short run, and the
invariant meant for that bug is the one that fails. The unbroken machine passes with the same
settings. Deterministic (`derandomize`, no example database), in memory, bounded."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, Phase, settings

from tests.kit import invariants as inv
from tests.kit.broken import VARIANTS
from tests.kit.machine import InvariantMachine

BITE = settings(
    max_examples=60,
    stateful_step_count=12,
    deadline=None,
    derandomize=True,
    database=None,
    report_multiple_bugs=False,
    phases=[Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)
SHORT = 8
"""At most this many steps (the setup included) in the shrunk counterexample."""


class CountingMachine(InvariantMachine):
    """Counts the steps of each run; the last run hypothesis makes is the shrunk example's."""

    final_invariants = [i for i in inv.FULL if i is not inv.live_projection_equals_replay]
    """Without the replay (0.3-0.8 s a run): no variant needs it, and shrinking makes hundreds
    of runs. tests/property/test_kit_machine.py checks it at the end of every example."""
    last_run_steps: ClassVar[int] = 0
    runs: ClassVar[int] = 0

    def __init__(self) -> None:
        super().__init__()
        type(self).runs += 1
        type(self).last_run_steps = 0

    def check_invariants(self, settings: Any, output: Any, runtimes: Any) -> None:
        type(self).last_run_steps += 1
        super().check_invariants(settings, output, runtimes)


def run(machine: type[CountingMachine], steps: int = 12) -> BaseException | None:
    machine.runs = 0
    machine.TestCase.settings = settings(BITE, stateful_step_count=steps)
    try:
        machine.TestCase().runTest()
    except BaseException as error:  # noqa: BLE001 - hypothesis re-raises the test's failure
        return error
    return None


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_machine_finds_the_broken_variant(variant: str) -> None:
    broken = VARIANTS[variant]
    words = broken.words

    class Machine(CountingMachine):
        read_models = broken.read_models

    with broken.broken():
        failure = run(Machine, broken.steps)
    assert failure is not None, f"{variant}: {Machine.runs} examples found nothing"
    assert isinstance(failure, AssertionError), repr(failure)
    assert words in str(failure), f"{variant}: caught by another invariant: {failure}"
    # The initial invariant check counts one; each step, the setup included, one more.
    steps = Machine.last_run_steps - 1
    assert steps <= SHORT, f"{variant}: shrunk to {steps} steps"


def test_the_unbroken_machine_passes_with_the_same_settings() -> None:
    class Machine(CountingMachine):
        pass

    failure = run(Machine)
    assert failure is None, failure
    assert Machine.runs >= BITE.max_examples
