"""wait_until: the result, the time-out's error, and a notebook's progress line that keeps its
final state in the saved notebook."""

import pytest

from labhelpers import wait
from labhelpers.wait import WaitTimeout, wait_until


def test_returns_what_the_check_returns_and_times_out_with_the_fix():
    calls = iter([None, 0, "found"])
    assert wait_until(lambda: next(calls), "it", timeout=5, interval=0.01, progress=False) == (
        "found")
    with pytest.raises(WaitTimeout, match="No thing after 0 s") as err:
        wait_until(lambda: None, "thing", timeout=0.05, interval=0.01, progress=False,
                   fix="do this.")
    assert "do this." in str(err.value)


def test_in_a_notebook_the_line_ends_with_how_long_it_took(monkeypatch):
    shown: list[str] = []

    class Handle:
        def update(self, obj):
            shown.append(obj.data)

    def display(obj, display_id=False):
        shown.append(obj.data)
        return Handle()

    monkeypatch.setattr(wait, "_in_kernel", lambda: True)
    monkeypatch.setattr("IPython.display.display", display)
    calls = iter([None, "ok"])
    assert wait_until(lambda: next(calls), "the scores", timeout=30, interval=0.01) == "ok"
    assert shown[0] == "waiting for the scores: 0/30 s"
    assert shown[-1] == "waiting for the scores: done after 0 s"
    shown.clear()
    with pytest.raises(WaitTimeout):
        wait_until(lambda: None, "the alert", timeout=0.05, interval=0.01)
    assert shown[-1] == "waiting for the alert: stopped after 0 s"
