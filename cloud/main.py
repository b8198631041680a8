"""Entry point of the lab's analytics application on Managed Service for Apache Flink.

The service runs this file (property group ``kinesis.analytics.flink.run.options``, key
``python``) with the zip's ``dep/`` folder on the Python path (key ``pyFiles``) and the
connector jar from ``lib/`` (key ``jarfile``). It reads the application's property groups from
/etc/flink/application_properties.json and hands them to the same job the local backend runs
(labhelpers/job/pipeline.py). On the service the program must return once the job is submitted.

Locally (the proof of the cloud configuration) run it with ``--properties FILE --wait``.
"""

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEP = HERE / "dep"
# The service puts dep/ on the path itself (pyFiles); this makes `python main.py` work too.
if DEP.is_dir() and str(DEP) not in sys.path:
    sys.path.insert(0, str(DEP))

KRCF_WHEEL_TAG = "cp310-abi3-manylinux_2_28_x86_64"


def check_krcf() -> str | None:
    """None if krcf (the Random Cut Forest library) imports here, else the ONE line to log.

    Its only wheel is built for manylinux 2.28, so it needs glibc 2.28 or newer; the managed
    service does not document its glibc, so the application checks at start and says so in one
    line instead of failing later inside a Python worker with a long traceback.
    """
    try:
        import krcf  # noqa: F401
    except ImportError as err:  # includes a library that fails to load (GLIBC_2.xx not found)
        import os

        try:
            libc = os.confstr("CS_GNU_LIBC_VERSION") or "an unknown C library"
        except (AttributeError, ValueError, OSError):
            libc = "an unknown C library"
        detail = " ".join(str(err).split())[:300]
        return (f"ERROR lab application: krcf cannot be imported ({detail}); its wheel "
                f"({KRCF_WHEEL_TAG}) needs glibc 2.28 or newer and this runtime has {libc}. "
                "Fix: run the application on a runtime with glibc 2.28+ (Flink 2.2 or newer) or "
                "rebuild the package with a krcf wheel for this platform.")
    return None


_KRCF_PROBLEM = check_krcf()
if _KRCF_PROBLEM is not None:
    print(_KRCF_PROBLEM, file=sys.stderr, flush=True)
    sys.exit(1)

from labhelpers.job import pipeline as job  # noqa: E402  (needs dep/ on the path first)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="The lab's analytics application.")
    parser.add_argument("--properties", type=Path, default=job.CLOUD_PROPERTIES,
                        help="property groups JSON (default: the managed service's file)")
    parser.add_argument("--wait", action="store_true",
                        help="block until the job ends (local runs; never on the service)")
    args = parser.parse_args(argv)
    groups = json.loads(args.properties.read_text(encoding="utf-8"))
    settings = job.JobSettings.from_properties(groups)
    # Submit, say so (the local stand-in of the service waits for this line), then return as
    # the service needs, or with --wait keep the local mini-cluster's process alive.
    result = job.run(settings, wait=False)
    client = result.get_job_client()
    if client is not None:
        print(f"job submitted: {client.get_job_id()}", flush=True)
    if args.wait:
        result.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
