"""Every notebook now ends by asking to shut its kernel down before the next one. That is safe
only because the lab's background processes outlive the kernel that started them: JupyterLab's
*Shut Down Kernel* sends a shutdown request, on which ipykernel ends every child process in
its own process group, and a kernel that does not answer is killed with its process group."""

from __future__ import annotations

import json
import os
import time

import psutil
import pytest
from jupyter_client.manager import start_new_kernel

from labhelpers.generate import traffic
from labhelpers.infra import emulator
from labhelpers.infra.config import LabConfig

pytestmark = pytest.mark.integration

START = """
import json
from pathlib import Path
from labhelpers.generate import traffic
from labhelpers.infra import emulator
from labhelpers.infra.config import LabConfig
cfg = LabConfig(home=Path({home!r}), prefix="kernelgone", emulator_port={port})
emulator.start(cfg)
print(json.dumps({{"emulator": emulator.status(cfg)["pid"],
                   "traffic": traffic.start(cfg)["pid"]}}))
"""


@pytest.mark.parametrize("how", ["shutdown request", "killed"])
def test_the_labs_processes_outlive_the_kernel_that_started_them(tmp_path, free_port, how):
    cfg = LabConfig(home=tmp_path, prefix="kernelgone", emulator_port=free_port)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    km, kc = start_new_kernel(kernel_name="python3", env=env, cwd=str(tmp_path))
    printed: list[str] = []
    try:
        reply = kc.execute_interactive(
            START.format(home=str(tmp_path), port=free_port), timeout=120,
            output_hook=lambda m: printed.append(m["content"].get("text", "")))
        assert reply["content"]["status"] == "ok", reply["content"]
        pids = json.loads("".join(printed).strip().splitlines()[-1])
        kernel = psutil.Process(km.provisioner.process.pid)
        assert {psutil.Process(p).ppid() for p in pids.values()} <= {kernel.pid, 1}
        kc.stop_channels()
        km.shutdown_kernel(now=how == "killed")
        assert not kernel.is_running() or kernel.status() == psutil.STATUS_ZOMBIE
        before = traffic.status(cfg)["records"]
        time.sleep(2.5)  # the generator sends every second
        after = traffic.status(cfg)
        assert after["running"] and after["pid"] == pids["traffic"], after
        assert after["records"] > before, "the traffic goes on without the kernel"
        assert emulator.status(cfg)["running"], "the emulator goes on without the kernel"
    finally:
        if km.has_kernel:
            km.shutdown_kernel(now=True)
        traffic.stop(cfg)
        emulator.stop(cfg)
