"""Memory one student needs, and how many students a server holds (issue 12, a class).

One student's lab, as notebook 04 runs it: the emulator, the traffic generator, the
analytics app (its Python process, JVM and the forest, with the alert poller) and two
notebook kernels (a kernel with the lab's notebook-side modules imported, measured twice
for 02's panel and 04's monitor). Peaks are sampled over a few minutes of live traffic.

    .venv/bin/python bench/bench_class.py [--seconds 120]

Prints each part's peak resident memory (process tree, MB), the total per student, and
how many students fit a 64 GB server with 8 GB left for the system and JupyterHub.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _peak import PeakRSS  # noqa: E402

KERNEL = ("import ipykernel, pandas, matplotlib.pyplot, ipywidgets; "
          "import labhelpers.monitor.live, labhelpers.generate.panel, labhelpers.teach.concepts; "
          "import time; time.sleep(30)")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=120)
    args = parser.parse_args()
    from labhelpers import backend_for, load_config
    from labhelpers.generate import traffic
    from labhelpers.infra import emulator, stack
    from labhelpers.run.cleanup import cleanup

    home = Path(tempfile.mkdtemp(prefix="bench-class-"))
    cfg = load_config(home=home, prefix="benchclass")
    lab = backend_for(cfg)
    peaks = {}
    try:
        emulator.start(cfg)
        stack.deploy(cfg, progress=False)
        traffic.start(cfg)
        lab.start_app()
        with PeakRSS(emulator.status(cfg)["pid"]) as emu, \
                PeakRSS(traffic.status(cfg)["pid"]) as gen, \
                PeakRSS(lab.app_status()["pid"]) as app:
            kernel = subprocess.Popen([sys.executable, "-c", KERNEL])
            with PeakRSS(kernel.pid) as ker:
                kernel.wait()
            time.sleep(max(0.0, args.seconds - 30))
        peaks = {"emulator (moto server)": emu.peak_mb, "traffic generator": gen.peak_mb,
                 "analytics app (Python + JVM + forest + poller)": app.peak_mb,
                 "notebook kernel x2 (lab modules imported)": 2 * ker.peak_mb}
    finally:
        cleanup(cfg, progress=False)
    total = sum(peaks.values())
    for name, mb in peaks.items():
        print(f"{name:48s} {mb:7.0f} MB")
    print(f"{'one student, in all':48s} {total:7.0f} MB")
    usable = (64 - 8) * 1024
    print(f"students on a 64 GB server (8 GB kept for the system): {int(usable // total)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
