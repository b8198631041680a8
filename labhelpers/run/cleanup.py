"""Take the whole lab down: the analytics app, the stack, the emulator and local files.

Safe to run at any point and as often as you like: each step skips what is already gone.
"""

from __future__ import annotations

import shutil
from typing import Any

from ..backends import for_config
from ..errors import LabError
from ..infra import emulator, inventory, stack
from ..infra.config import LabConfig
from ..logs import logger

log = logger(__name__)


def _stop_app(cfg: LabConfig) -> tuple[bool | None, str | None]:
    try:
        return for_config(cfg).delete_app(), None
    except LabError as err:
        return False, f"stopping the analytics app failed: {err}"


def _stop_traffic(cfg: LabConfig) -> tuple[bool | None, str | None]:
    # The generator writes into the raw bucket and the lab folder: stop it before both go.
    from ..generate import traffic

    try:
        was_running = bool(traffic.status(cfg).get("running"))
        traffic.stop(cfg)
        return was_running, None
    except LabError as err:
        return False, f"stopping the traffic generator failed: {err}"


def _remove_local_files(cfg: LabConfig) -> list[str]:
    """Remove this prefix's local state folder (stream logs, positions, inbox copy)."""
    lab_dir = cfg.lab_dir
    # Only ever the prefix's own folder inside the lab home.
    if lab_dir.parent != cfg.home or lab_dir.name != cfg.prefix or not lab_dir.is_dir():
        return []
    shutil.rmtree(lab_dir)
    return [str(lab_dir)]


def cleanup(cfg: LabConfig, stop_emulator: bool = True, progress: bool = True) -> dict[str, Any]:
    """Stop traffic and the app, delete the stack and what deploy made, check, clean up.

    Returns a report: ``traffic_stopped``, ``app_stopped`` (on AWS: the managed Flink
    application was deleted), ``stack_deleted``, ``leftovers`` (names still existing with the
    prefix; [] means all gone), ``tagged`` (ARNs still tagged ``lab-prefix=<prefix>``),
    ``emulator_stopped``, ``removed_files``, ``notes``. With the local backend and no
    emulator running, nothing exists in the emulator (it keeps everything in memory), so
    only local files are removed. Only resources whose names start with the prefix are
    deleted; the tag listing is for your information and changes nothing.
    """
    report: dict[str, Any] = {
        "backend": cfg.backend,
        "prefix": cfg.prefix,
        "traffic_stopped": None,
        "app_stopped": None,
        "stack_deleted": False,
        "leftovers": [],
        "tagged": [],
        "emulator_stopped": False,
        "removed_files": [],
        "notes": [],
    }
    for key, step in (("traffic_stopped", _stop_traffic), ("app_stopped", _stop_app)):
        stopped, note = step(cfg)
        report[key] = stopped
        if note:
            report["notes"].append(note)

    lab = for_config(cfg)
    emulator_up = not lab.runs_emulator or emulator.status(cfg)["running"]
    app_left = report["app_stopped"] is False and any(
        n.startswith("stopping the analytics app failed") for n in report["notes"])
    if app_left:
        # The app could not be deleted: it may still run (on AWS: bill). Deleting the stack
        # under it would take its streams and role away and leave it failing and billing;
        # the note says what still runs, its cost and the command that stops it.
        report["stack_deleted"] = False
        report["leftovers"] = inventory.leftovers(cfg) if emulator_up else []
    elif emulator_up:
        stack.delete(cfg, progress=progress)
        report["stack_deleted"] = True
        report["leftovers"] = inventory.leftovers(cfg)
        report["tagged"] = inventory.tagged_resources(cfg)
        if report["tagged"] and not cfg.world.emulator:
            report["notes"].append(
                "AWS's tag index can list resources for a few minutes after they are deleted; "
                "run the cleanup again later to check")
    else:
        report["notes"].append(
            "the local emulator is not running, so no AWS resources exist (it keeps them in "
            "memory only)")

    if lab.runs_emulator and stop_emulator and not app_left:
        report["emulator_stopped"] = emulator.stop(cfg)

    # the local files tell where the app is (the stand-in's state): kept while it is left
    report["removed_files"] = [] if app_left else _remove_local_files(cfg)
    if progress:
        left = report["leftovers"]
        log.info("Cleanup done: " + ("nothing is left with the prefix "
                                     f"'{cfg.prefix}'." if not left else
                                     f"{len(left)} item(s) still exist: {', '.join(left)}"))
        if report["tagged"]:
            log.info(f"  still tagged lab-prefix={cfg.prefix}: {', '.join(report['tagged'])}")
        for n in report["notes"]:
            log.info(f"  note: {n}")
    return report
