"""The library reports through logging; its handler keeps the notebooks' progress lines as
they printed before: the bare message, INFO on stdout, warnings on stderr."""

from __future__ import annotations

import logging

from labhelpers.logs import ProgressHandler, logger


def test_progress_lines_read_as_printed(capsys):
    log = logger("labhelpers.infra.stack")
    log.info("Stack walk-stack: CREATE_COMPLETE in 1.2 s.")
    log.info("100% done, %s kept as written")  # no arguments: no %-formatting
    log.warning("WARNING: the replay took long")
    out, err = capsys.readouterr()
    assert out == ("Stack walk-stack: CREATE_COMPLETE in 1.2 s.\n"
                   "100% done, %s kept as written\n")
    assert err == "WARNING: the replay took long\n"


def test_one_handler_however_many_modules_ask(capsys):
    for name in ("labhelpers.a", "labhelpers.b", "labhelpers.a"):
        logger(name)
    root = logging.getLogger("labhelpers")
    assert sum(isinstance(h, ProgressHandler) for h in root.handlers) == 1
    logger("labhelpers.a").info("once")
    assert capsys.readouterr().out == "once\n", "shown once, not also by the root logger"


def test_the_messages_can_be_routed_elsewhere(caplog):
    root = logging.getLogger("labhelpers")
    saved = root.handlers[:], root.propagate
    try:
        root.handlers.clear()
        root.propagate = True
        with caplog.at_level(logging.INFO, logger="labhelpers"):
            logger("labhelpers.generate.traffic").info("Traffic stopped (pid 1).")
        assert caplog.messages == ["Traffic stopped (pid 1)."]
    finally:
        root.handlers[:], root.propagate = saved


def test_a_module_run_as_a_program_still_reports(capsys):
    """`python -m labhelpers.analytics.runner` names its module "__main__": its lines (the
    app's log, "job submitted: ...") must not be dropped."""
    logger("__main__").info("job submitted: 1234")
    assert "job submitted: 1234" in capsys.readouterr().out
