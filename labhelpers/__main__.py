"""Command line: ``python -m labhelpers <command>``; a thin layer over the library."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import LabError


def _cfg(args):
    from .config import load_config

    return load_config(backend=args.backend, prefix=args.prefix, region=args.region)


def _print(obj) -> None:
    print(json.dumps(obj, indent=2, default=str))


def cmd_replay(args) -> int:
    from .replay import replay

    forest = json.loads(args.forest) if args.forest else None
    _print(replay(args.input, args.out, forest=forest, window_seconds=args.window_seconds,
                  lateness_seconds=args.lateness_seconds))
    return 0


def cmd_doctor(args) -> int:
    from .java import find_java_home, java_version

    home = find_java_home()
    _print({"java_home": str(home), "java_version": java_version(home),
            "python": sys.version.split()[0]})
    return 0


def cmd_emulator(args) -> int:
    from . import emulator

    cfg = _cfg(args)
    action = {"start": emulator.start, "stop": emulator.stop, "status": emulator.status}
    _print(action[args.action](cfg))
    return 0


def cmd_deploy(args) -> int:
    from . import stack

    _print(stack.deploy(_cfg(args), email=args.email, phone=args.phone))
    return 0


def cmd_generate(args) -> int:
    from . import traffic

    cfg = _cfg(args)
    if args.action == "start":
        _print(traffic.start(cfg, sites=args.sites, click_rate=args.click_rate,
                             impression_rate=args.impression_rate, duration_s=args.duration))
    elif args.action == "spike":
        _print(traffic.spike(cfg, extra_senders=args.extra_senders, seconds=args.seconds))
    elif args.action == "stop":
        _print(traffic.stop(cfg))
    elif args.action == "status":
        _print(traffic.status(cfg))
    elif args.action == "timeline":
        _print(traffic.write_lab_timeline(args.out, warmup_s=args.warmup, sites=args.sites))
    return 0


def cmd_app(args) -> int:
    from . import app

    cfg = _cfg(args)
    if args.action == "start":
        _print(app.start(cfg, alerts=not args.no_alerts))
    elif args.action == "stop":
        _print({"was_running": app.stop(cfg)})
    elif args.action == "status":
        _print(app.status(cfg))
    elif args.action == "logs":
        print(app.logs(cfg, args.lines))
    return 0


def cmd_inbox(args) -> int:
    from .alerts import inbox

    _print(inbox(_cfg(args)))
    return 0


def cmd_cleanup(args) -> int:
    from .cleanup import cleanup

    _print(cleanup(_cfg(args), stop_emulator=not args.keep_emulator))
    return 0


def cmd_run_lab(args) -> int:
    from .labrun import run_lab

    params = json.loads(args.parameters) if args.parameters else None
    run = run_lab(args.run_dir, parameters=params)
    summary = json.loads((Path(run) / "summary.json").read_text())
    return 0 if summary["ok"] else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m labhelpers",
                                description="Clickstream anomaly detection lab.")
    p.add_argument("--backend", choices=("local", "aws"), default=None,
                   help="default: LAB_BACKEND or local")
    p.add_argument("--prefix", default=None, help="resource name prefix (LAB_PREFIX)")
    p.add_argument("--region", default=None, help="AWS region (LAB_REGION)")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("replay", help="run the analytics job over a JSON-lines file")
    r.add_argument("input", type=Path)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--window-seconds", type=int, default=10)
    r.add_argument("--lateness-seconds", type=int, default=5)
    r.add_argument("--forest", default=None,
                   help='forest parameters as JSON, e.g. \'{"threshold": 3.5}\'')
    r.set_defaults(fn=cmd_replay)

    sub.add_parser("doctor", help="check Java and Python").set_defaults(fn=cmd_doctor)

    e = sub.add_parser("emulator", help="the local AWS emulator (moto server)")
    e.add_argument("action", choices=("start", "stop", "status"))
    e.set_defaults(fn=cmd_emulator)

    d = sub.add_parser("deploy", help="deploy (or update) the CloudFormation stack")
    d.add_argument("--email", default=None)
    d.add_argument("--phone", default=None)
    d.set_defaults(fn=cmd_deploy)

    g = sub.add_parser("generate", help="click and impression traffic")
    g.add_argument("action", choices=("start", "spike", "stop", "status", "timeline"))
    g.add_argument("--sites", nargs="+", default=["example.com"])
    g.add_argument("--click-rate", type=float, default=1.0)
    g.add_argument("--impression-rate", type=float, default=1.0)
    g.add_argument("--duration", type=float, default=None, help="seconds (default: until stop)")
    g.add_argument("--extra-senders", type=int, default=3)
    g.add_argument("--seconds", type=float, default=20)
    g.add_argument("--warmup", type=float, default=900, help="timeline: seconds before spike")
    g.add_argument("--out", type=Path, default=Path("lab_test.jsonl"))
    g.set_defaults(fn=cmd_generate)

    a = sub.add_parser("app", help="the analytics application (Flink job)")
    a.add_argument("action", choices=("start", "stop", "status", "logs"))
    a.add_argument("--no-alerts", action="store_true")
    a.add_argument("--lines", type=int, default=40)
    a.set_defaults(fn=cmd_app)

    sub.add_parser("inbox", help="alerts received").set_defaults(fn=cmd_inbox)

    c = sub.add_parser("cleanup", help="stop everything and delete what the lab made")
    c.add_argument("--keep-emulator", action="store_true")
    c.set_defaults(fn=cmd_cleanup)

    rl = sub.add_parser("run-lab", help="run every notebook headless (make run)")
    rl.add_argument("--run-dir", type=Path, default=None)
    rl.add_argument("--parameters", default=None, help="notebook parameters as JSON")
    rl.set_defaults(fn=cmd_run_lab)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except LabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
