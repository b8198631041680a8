"""Memory per student and alert latency, with several students' labs running at once.

Each student's lab runs as notebook 04 runs it, in its own LAB_HOME and emulator port: the
emulator, the traffic generator, the analytics app (its Python process, the JVM with the
forest, the alert poller) and two notebook kernels (02's panel and 04's monitor: a real
ipykernel that has imported the lab's notebook-side modules). Live traffic flows; once every
site's forest has learned LEARNED_WINDOWS windows, the clicks are spiked and the alert's
latency is measured (end of the first anomalous window to the message in the inbox).

    .venv/bin/python bench/bench_class.py [--students 2] [--seconds 60]

Prints, per student, each part's peak resident memory (process tree, MB; a sum of peaks, so
an upper bound), the total by RSS and by PSS (a page shared by the students' processes, such
as the JVM's class archive and the libraries of the one installation, counts once in all),
the alert latency and the alerts received (one each); then how many students fit a 64 GB server
with 8 GB kept for the system and JupyterHub (from the largest student). On a machine shared
with other work the latency grows with the load: say so with the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _peak import PeakRSS  # noqa: E402

# what a notebook kernel of the lab has imported by notebook 04 (run inside a real ipykernel)
KERNEL_CODE = ("import pandas, matplotlib.pyplot, ipywidgets\n"
               "import labhelpers.monitor.live, labhelpers.generate.panel, "
               "labhelpers.teach.concepts")
# what notebook 04 waits for before the spike (LiveMonitor.wait_for_forest)
LEARNED_WINDOWS = 20
PARTS = ("emulator (moto server)", "traffic generator",
         "analytics app (Python + JVM + forest + poller)",
         "notebook kernel x2 (ipykernel, lab modules imported)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def lab_kernel():
    """A real IPython kernel (ipykernel, as JupyterLab starts one) that has run KERNEL_CODE;
    yields its process id."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    try:
        reply = kc.execute_interactive(KERNEL_CODE, timeout=180)
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"the kernel could not import the lab: {reply['content']}")
        yield km.provisioner.process.pid
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def one_student(name: str, seconds: float) -> dict:
    """One student's lab, measured; returns the parts' peaks (MB) and the alert latency (s)."""
    import pandas as pd

    from labhelpers import backend_for, load_config
    from labhelpers.alerts import inbox as alert_inbox
    from labhelpers.generate import traffic
    from labhelpers.infra import emulator, stack
    from labhelpers.monitor.tables import forest_ready, scores_frame
    from labhelpers.run.cleanup import cleanup
    from labhelpers.wait import wait_until

    cfg = load_config(prefix=name)
    lab = backend_for(cfg)
    result: dict = {"student": name}
    try:
        emulator.start(cfg)
        stack.deploy(cfg, progress=False)
        traffic.start(cfg)
        lab.start_app()
        with PeakRSS(emulator.status(cfg)["pid"], pss=True) as emu, \
                PeakRSS(traffic.status(cfg)["pid"], pss=True) as gen, \
                PeakRSS(lab.app_status()["pid"], pss=True) as app:
            with lab_kernel() as pid, PeakRSS(pid, pss=True) as ker:
                time.sleep(30)

            def learned() -> bool:
                # as LiveMonitor counts them: scored windows that were not anomalous
                df = scores_frame(cfg)
                if df.empty:
                    return False
                ok = df["anomaly_score"].notna() & ~df["is_anomaly"].astype(bool)
                return (forest_ready(df)
                        and int(ok.groupby(df["site"]).sum().min()) >= LEARNED_WINDOWS)

            wait_until(learned, "the forests to learn", timeout=900, interval=2)
            traffic.spike(cfg)
            inbox = wait_until(lambda: alert_inbox.read_inbox(cfg) or None, "the alert",
                               timeout=300, interval=0.2)
            received = pd.Timestamp(inbox[0]["received_at"]).timestamp()
            df = scores_frame(cfg)
            first_flag_end = df[df["is_anomaly"].astype(bool)]["window_end"].min().timestamp()
            result["alert_latency_s"] = round(received - first_flag_end, 1)
            time.sleep(max(0.0, seconds - 30))
            # one episode, one message: the spike's later windows must not send a second
            result["alerts"] = len(alert_inbox.inbox(cfg))  # every alert so far
        result["parts_mb"] = dict(zip(PARTS, (emu.peak_mb, gen.peak_mb, app.peak_mb,
                                              2 * ker.peak_mb), strict=True))
        result["parts_pss_mb"] = dict(zip(PARTS, (emu.peak_pss_mb, gen.peak_pss_mb,
                                                  app.peak_pss_mb, 2 * ker.peak_pss_mb),
                                          strict=True))
    finally:
        cleanup(cfg, progress=False)
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--students", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60,
                        help="live traffic after the alert, still measured")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_student(args.one, args.seconds)), flush=True)
        return 0
    procs = []
    for i in range(args.students):
        env = dict(os.environ, LAB_HOME=tempfile.mkdtemp(prefix=f"bench-class-{i}-"),
                   LAB_EMULATOR_PORT=str(free_port()))
        procs.append(subprocess.Popen(
            [sys.executable, __file__, "--one", f"benchclass{i}", "--seconds",
             str(args.seconds)], env=env, stdout=subprocess.PIPE, text=True))
    results = []
    for p in procs:
        out, _ = p.communicate()
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if p.returncode != 0 or not lines:
            print(f"a student's lab failed (exit {p.returncode})", file=sys.stderr)
            return 1
        results.append(json.loads(lines[-1]))
    print(f"{args.students} students' labs at once (this machine: {os.cpu_count()} cores)")
    print("peak resident memory (RSS), per student:")
    for part in PARTS:
        print(f"{part:48s} " + " ".join(f"{r['parts_mb'][part]:7.0f}" for r in results)
              + "  MB")
    totals = [sum(r["parts_mb"].values()) for r in results]
    print(f"{'one student, in all (RSS)':48s} " + " ".join(f"{t:7.0f}" for t in totals) + "  MB")
    pss = [sum(r["parts_pss_mb"].values()) for r in results]
    print(f"{'one student, in all (PSS: shared pages split)':48s} "
          + " ".join(f"{t:7.0f}" for t in pss) + "  MB")
    print(f"{'alert latency (window end -> inbox)':48s} "
          + " ".join(f"{r['alert_latency_s']:7.1f}" for r in results) + "  s")
    print(f"{'alerts received (must be 1)':48s} "
          + " ".join(f"{r['alerts']:7d}" for r in results))
    usable = (64 - 8) * 1024
    print(f"students on a 64 GB server (8 GB kept for the system): {int(usable // max(totals))} "
          f"by RSS, {int(usable // max(pss))} by PSS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
