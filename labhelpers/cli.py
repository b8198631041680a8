"""Command line: ``python -m labhelpers <command>``; a thin layer over the library."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import LabError


def _cfg(args):
    from .infra.config import load_config

    return load_config(backend=args.backend, prefix=args.prefix, region=args.region)


def _print(obj) -> None:
    print(json.dumps(obj, indent=2, default=str))


def _job_options(parser: argparse.ArgumentParser) -> None:
    """The analytics app's parameters, the same on every command that runs the job."""
    parser.add_argument("--window-seconds", type=int, default=None,
                        help="tumbling window length (default 10)")
    parser.add_argument("--lateness-seconds", type=int, default=None,
                        help="how late a record may be (default 5)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="any app parameter by the lab's name, e.g. threshold=3.5 (repeat)")
    parser.add_argument("--forest", default=None,
                        help='forest parameters as JSON, e.g. \'{"threshold": 3.5}\'')


def _job_params(args):
    from .job.params import JobParams

    base = JobParams.of(_forest_json(args.forest), window_seconds=args.window_seconds,
                        lateness_seconds=args.lateness_seconds)
    return JobParams.from_pairs(args.param, base)


def cmd_replay(args) -> int:
    from .analytics.replay import replay

    _print(replay(args.input, args.out, _job_params(args)))
    return 0


def cmd_doctor(args) -> int:
    from .flinkenv import find_java_home, java_version

    home = find_java_home()
    _print({"java_home": str(home), "java_version": java_version(home),
            "python": sys.version.split()[0]})
    return 0


def cmd_jvm_cache(args) -> int:
    from .analytics.jvm_cache import prepare

    _print(prepare(force=args.force))
    return 0


def cmd_emulator(args) -> int:
    from .infra import emulator

    cfg = _cfg(args)
    action = {"start": emulator.start, "stop": emulator.stop, "status": emulator.status}
    _print(action[args.action](cfg))
    return 0


def cmd_deploy(args) -> int:
    from .infra import stack

    _print(stack.deploy(_cfg(args), email=args.email, phone=args.phone,
                        stream_mode=args.stream_mode, shard_count=args.shard_count))
    return 0


def cmd_cost(args) -> int:
    from .infra import cost

    print(cost.format_estimate(cost.estimate(
        records_per_second=args.records_per_second, sites=args.sites,
        input_mode=args.stream_mode, input_shards=args.shard_count)))
    return 0


def cmd_package(args) -> int:
    from .analytics import packaging

    wheels = args.wheel or None
    path = packaging.package(jar=args.jar, wheels=wheels, out=args.out)
    _print({"zip": str(path), "entries": len(packaging.check_zip(path))})
    return 0


def cmd_managed_app(args) -> int:
    """The managed application through the aws backend, as `app` goes through the configured
    one: the same start, stop, status and logs, the same default start position (latest)."""
    from .backends import for_config
    from .infra.config import load_config

    cfg = load_config(backend="aws", prefix=args.prefix, region=args.region)
    lab = for_config(cfg)
    if args.action in ("deploy", "start"):
        if args.no_start:
            from .analytics import managed
            from .backends.aws import KINESIS_POSITIONS

            _print(managed.deploy(cfg, args.zip, _job_params(args), start_app=False,
                                  start_position=KINESIS_POSITIONS[args.start_position]))
        else:
            _print(lab.start_app(_job_params(args), fresh=args.fresh, zip_path=args.zip,
                                 start_position=args.start_position))
    elif args.action == "status":
        _print(lab.app_status())
    elif args.action == "stop" and args.force:
        from .analytics import managed

        _print({"was_running": managed.stop(cfg, force=True, **lab.service())})
    elif args.action == "stop":
        _print({"was_running": lab.stop_app()})
    elif args.action == "delete":
        _print({"deleted": lab.delete_app()})
    elif args.action == "logs":
        print(lab.app_logs(args.lines))
    return 0


def _generate_rates(pairs):
    from .errors import GeneratorError

    if not pairs:
        return None
    rates = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            rates[name] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise GeneratorError(f"--rate {pair!r} is not NAME=RECORDS_PER_S",
                                 "write e.g. --rate Click=2 --rate Impression=1.")
    return rates


def _send_sink(cfg, args):
    """The backend's input sink for ``generate send`` (none when it writes to a file)."""
    if args.simulated and args.out is not None:
        return None
    from .backends import for_config
    from .generate.traffic import traffic_dir

    return for_config(cfg).input_sink(failure_log=traffic_dir(cfg) / "send-failures.jsonl")


def cmd_generate(args) -> int:
    from .generate import traffic

    cfg = _cfg(args)
    rates = _generate_rates(args.rate)
    plan_kw = dict(rates=rates, templates=args.templates, curve=args.curve, total=args.total,
                   seed=args.seed, over_limit=args.over_limit)
    if args.action == "start":
        _print(traffic.start(cfg, sites=args.sites, click_rate=args.click_rate,
                             impression_rate=args.impression_rate, duration_s=args.duration,
                             past_seconds=args.past_seconds, **plan_kw))
    elif args.action == "spike":
        _print(traffic.spike(cfg, extra_senders=args.extra_senders, seconds=args.seconds,
                             payload=args.payload))
    elif args.action == "rate":
        _print([traffic.set_rate(cfg, name, r) for name, r in (rates or {}).items()])
    elif args.action == "stop":
        _print(traffic.stop(cfg))
    elif args.action == "status":
        st = traffic.status(cfg)
        st.pop("history", None)  # the panel draws it; too long to print
        _print(st)
    elif args.action == "timeline":
        _print(traffic.write_lab_timeline(args.out or Path("lab_test.jsonl"),
                                          warmup_s=args.warmup, sites=args.sites))
    elif args.action == "templates":
        _print(traffic.describe_templates(args.templates))
    elif args.action == "preview":
        _print(traffic.preview(rates or ("Impression", "Click"), args.templates, n=args.n,
                               sites=args.sites, seed=args.seed))
    elif args.action == "send":
        _print(traffic.send(cfg, sites=args.sites, click_rate=args.click_rate,
                            impression_rate=args.impression_rate, duration_s=args.duration,
                            simulated=args.simulated, out=args.out, sink=_send_sink(cfg, args),
                            **plan_kw))
    return 0


def cmd_app(args) -> int:
    from .backends import for_config

    lab = for_config(_cfg(args))
    if args.action == "start":
        extra = {"alerts": False} if args.no_alerts else {}
        _print(lab.start_app(_job_params(args), fresh=args.fresh,
                             start_position=args.start_position, **extra))
    elif args.action == "stop":
        _print({"was_running": lab.stop_app()})
    elif args.action == "status":
        _print(lab.app_status())
    elif args.action == "logs":
        print(lab.app_logs(args.lines))
    return 0


def cmd_export(args) -> int:
    from .backends import for_config
    from .stream import export

    fn = export.export_input if args.stream == "input" else export.export_scores
    _print(fn(for_config(_cfg(args)), args.out))
    return 0


def cmd_inbox(args) -> int:
    from .alerts.inbox import inbox

    _print(inbox(_cfg(args)))
    return 0


def cmd_cleanup(args) -> int:
    from .run.cleanup import cleanup

    _print(cleanup(_cfg(args), stop_emulator=not args.keep_emulator))
    return 0


def cmd_notebooks(args) -> int:
    from .resources import copy_notebooks

    books = copy_notebooks(args.dir, overwrite=args.overwrite)
    print(f"{len(books)} notebooks in {args.dir}: open them in JupyterLab; your run records "
          f"go to {args.dir}/runs/")
    return 0


def cmd_run_lab(args) -> int:
    import os

    from .run.headless import run_lab
    from .run.report import checks

    # the notebooks' kernels read LAB_* (their parameters cells leave BACKEND empty)
    if args.backend:
        os.environ["LAB_BACKEND"] = args.backend
    if args.emulator:
        os.environ["LAB_EMULATED"] = "1"
    params = json.loads(args.parameters) if args.parameters else None
    run = run_lab(args.run_dir, parameters=params, folder=args.folder)
    summary = json.loads((Path(run) / "summary.json").read_text())
    failed = [c.name for c in checks(summary) if not c.passed]
    if failed:
        print(f"Failed checks: {', '.join(failed)} (see report.html)", file=sys.stderr)
    return 0 if summary["ok"] and not failed else 1


def cmd_class_report(args) -> int:
    from .run.class_report import class_report

    print(f"Class report: {class_report(args.run_dirs, args.out)}")
    return 0


def _forest_json(text):
    from .errors import ConfigError

    if not text:
        return None
    try:
        forest = json.loads(text)
    except ValueError as err:
        raise ConfigError(f"--forest is not JSON ({err})",
                          'write e.g. --forest \'{"threshold": 3.5}\'.') from None
    if not isinstance(forest, dict):
        raise ConfigError("--forest must be a JSON object",
                          'write e.g. --forest \'{"threshold": 3.5}\'.')
    return forest


def cmd_reference_run(args) -> int:
    from .run.reference import make_reference_run

    out = make_reference_run()
    print(f"Reference run written to {out} (commit it with the notebooks' change)")
    return 0


def cmd_score_series(args) -> int:
    from .evaluate.series import score_series

    _print(score_series(args.input, args.out, forest=_forest_json(args.forest),
                        seasons=not args.no_seasons))
    return 0


def cmd_evaluate(args) -> int:
    from .evaluate.evaluation import format_table, run_evaluation

    ev = run_evaluation(args.out, size=args.size, seed=args.seed, params=_job_params(args))
    print(format_table(ev.table))
    _print({"totals": ev.totals, "windows": ev.replay["windows"],
            "count_mismatches": ev.count_mismatches, "seconds": ev.seconds,
            "evaluation_csv": str(ev.out_dir / "evaluation.csv")})
    return 0


def _common_options(parser: argparse.ArgumentParser, default) -> None:
    """--backend, --prefix, --region: on the top level (default None) and again on every
    sub-command (default SUPPRESS, so one given before the sub-command is not overwritten):
    ``run-lab --backend aws`` and ``--backend aws run-lab`` mean the same."""
    parser.add_argument("--backend", choices=("local", "aws"), default=default,
                        help="default: LAB_BACKEND or local")
    parser.add_argument("--prefix", default=default, help="resource name prefix (LAB_PREFIX)")
    parser.add_argument("--region", default=default, help="AWS region (LAB_REGION)")


class _Subparsers:
    """add_subparsers' action, adding the common options to every sub-command it makes."""

    def __init__(self, action) -> None:
        self.action = action

    def add_parser(self, *args, **kwargs) -> argparse.ArgumentParser:
        parser = self.action.add_parser(*args, **kwargs)
        _common_options(parser, argparse.SUPPRESS)
        return parser


def build_parser() -> argparse.ArgumentParser:
    # the same commands as the console script `clicklab` and as `python -m labhelpers`
    prog = "clicklab" if Path(sys.argv[0]).name == "clicklab" else "python -m labhelpers"
    p = argparse.ArgumentParser(prog=prog,
                                description="Clickstream anomaly detection lab.")
    _common_options(p, None)
    sub = _Subparsers(p.add_subparsers(dest="command", required=True))

    r = sub.add_parser("replay", help="run the analytics job over a JSON-lines file")
    r.add_argument("input", type=Path)
    r.add_argument("--out", type=Path, required=True)
    _job_options(r)
    r.set_defaults(fn=cmd_replay)

    sub.add_parser("doctor", help="check Java and Python").set_defaults(fn=cmd_doctor)

    jc = sub.add_parser("jvm-cache", help="build the Flink JVM's start-up cache (make install)")
    jc.add_argument("--force", action="store_true", help="rebuild it even if it is up to date")
    jc.set_defaults(fn=cmd_jvm_cache)

    e = sub.add_parser("emulator", help="the local AWS emulator (moto server)")
    e.add_argument("action", choices=("start", "stop", "status"))
    e.set_defaults(fn=cmd_emulator)

    d = sub.add_parser("deploy", help="deploy (or update) the CloudFormation stack")
    d.add_argument("--email", default=None)
    d.add_argument("--phone", default=None)
    d.add_argument("--stream-mode", choices=("PROVISIONED", "ON_DEMAND"), default=None,
                   help="input stream capacity mode (default: PROVISIONED, or keep the stack's)")
    d.add_argument("--shard-count", type=int, default=None, help="input shards (1-4)")
    d.set_defaults(fn=cmd_deploy)

    co = sub.add_parser("cost", help="estimated hourly cost of the lab on AWS, and how to stop")
    co.add_argument("--records-per-second", type=float, default=2.0)
    co.add_argument("--sites", type=int, default=1)
    co.add_argument("--stream-mode", choices=("PROVISIONED", "ON_DEMAND"), default="PROVISIONED")
    co.add_argument("--shard-count", type=int, default=1)
    co.set_defaults(fn=cmd_cost)

    pk = sub.add_parser("package", help="build the managed Flink application's zip")
    pk.add_argument("--jar", type=Path, default=None,
                    help="connector jar (default: build cloud/pom.xml with Maven)")
    pk.add_argument("--wheel", type=Path, action="append", default=[],
                    help="Python wheel for the service (default: pip download krcf)")
    pk.add_argument("--out", type=Path, default=None,
                    help="zip path (default: dist/ beside cloud/pom.xml)")
    pk.set_defaults(fn=cmd_package)

    # "cloud-app": the command's former name, still accepted
    ca = sub.add_parser("managed-app", aliases=["cloud-app"],
                        help="the managed Flink application (aws backend)")
    ca.add_argument("action", choices=("deploy", "start", "status", "stop", "delete", "logs"))
    ca.add_argument("--zip", type=Path, default=None, help="package (deploy)")
    _job_options(ca)
    ca.add_argument("--no-start", action="store_true", help="deploy without starting")
    ca.add_argument("--start-position", choices=("latest", "earliest"), default="latest",
                    help="where a fresh start reads the input stream from (as `app start`)")
    ca.add_argument("--fresh", action="store_true",
                    help="start over instead of restoring from the latest snapshot")
    ca.add_argument("--lines", type=int, default=40, help="logs: how many lines")
    ca.add_argument("--force", action="store_true",
                    help="stop: at once, without a snapshot (when a normal stop is refused)")
    ca.set_defaults(fn=cmd_managed_app)

    g = sub.add_parser(
        "generate", help="traffic: templates, rates, spikes, timelines",
        description="start|spike|rate|stop|status drive the background generator; send runs "
        "one in the foreground (headless); preview and templates show what would be sent; "
        "timeline writes the lab's test in simulated time.")
    g.add_argument("action", choices=("start", "spike", "rate", "stop", "status", "send",
                                      "preview", "templates", "timeline"))
    g.add_argument("--sites", nargs="+", default=["example.com"])
    g.add_argument("--click-rate", type=float, default=1.0)
    g.add_argument("--impression-rate", type=float, default=1.0)
    g.add_argument("--rate", action="append", metavar="NAME=R",
                   help="records/s per site of a template (repeat; replaces the click and "
                   "impression rates); with `rate`: change it on the running generator")
    g.add_argument("--templates", type=Path, default=None, help="a file of your templates")
    g.add_argument("--curve", default=None,
                   help='time-of-day rate curve: "diurnal" or JSON like '
                   '\'{"points": [[0, 0.2], [20, 1.5]], "period_s": 600}\'')
    g.add_argument("--duration", type=float, default=None, help="seconds (default: until stop)")
    g.add_argument("--total", type=int, default=None, help="stop after this many records")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--past-seconds", type=float, default=0,
                   help="start: first write this many seconds of past traffic (event times "
                   "before now, up to 3600), as if the sites had been sending already")
    g.add_argument("--over-limit", action="store_true",
                   help="send even above what the stream takes (records are throttled)")
    g.add_argument("--simulated", action="store_true",
                   help="send: render in simulated time, as fast as possible (to --out)")
    g.add_argument("--payload", default="Click", help="spike: the template to multiply")
    g.add_argument("--extra-senders", type=int, default=3)
    g.add_argument("--seconds", type=float, default=20)
    g.add_argument("-n", type=int, default=3, help="preview: records per template")
    g.add_argument("--warmup", type=float, default=900, help="timeline: seconds before spike")
    g.add_argument("--out", type=Path, default=None,
                   help="timeline (default lab_test.jsonl) and send --simulated: a JSON-lines "
                   "file to write instead of the stream")
    g.set_defaults(fn=cmd_generate)

    a = sub.add_parser("app", help="the analytics application (Flink job)")
    a.add_argument("action", choices=("start", "stop", "status", "logs"))
    a.add_argument("--no-alerts", action="store_true")
    a.add_argument("--start-position", choices=("latest", "earliest", "warm"),
                   default="latest",
                   help="start: where a fresh start reads the input stream from (warm, local "
                        "backend: from the latest, after learning the records before it)")
    a.add_argument("--fresh", action="store_true",
                   help="start over instead of resuming from the last checkpoint")
    _job_options(a)
    a.add_argument("--lines", type=int, default=40)
    a.set_defaults(fn=cmd_app)

    ex = sub.add_parser("export", help="the input stream as JSON lines, or the scores as CSV")
    ex.add_argument("stream", choices=("input", "scores"))
    ex.add_argument("out", type=Path, help="input: OUT.jsonl; scores: OUT.csv")
    ex.set_defaults(fn=cmd_export)

    sub.add_parser("inbox", help="alerts received").set_defaults(fn=cmd_inbox)

    c = sub.add_parser("cleanup", help="stop everything and delete what the lab made")
    c.add_argument("--keep-emulator", action="store_true")
    c.set_defaults(fn=cmd_cleanup)

    rl = sub.add_parser("run-lab", help="run every notebook headless (make run)")
    rl.add_argument("--run-dir", type=Path, default=None)
    rl.add_argument("--folder", type=Path, default=None,
                    help="run the notebooks in this folder (its own copy when it has one) and "
                         "keep the record in its runs/ (default: the checkout's notebooks/, "
                         "else the current folder)")
    rl.add_argument("--parameters", default=None, help="notebook parameters as JSON")
    rl.add_argument("--emulator", action="store_true",
                    help="with --backend aws: rehearse the aws path with every AWS call going "
                         "to the local emulator (the managed service and Lambda stood in for)")
    rl.set_defaults(fn=cmd_run_lab)

    nb = sub.add_parser("notebooks", help="copy the lab's notebooks into your own folder")
    nb.add_argument("dir", type=Path, help="the folder (made if missing), e.g. ~/clickstream-lab")
    nb.add_argument("--overwrite", action="store_true",
                    help="replace notebooks already there (your changes to them are lost)")
    nb.set_defaults(fn=cmd_notebooks)

    cr = sub.add_parser("class-report", help="students' run folders in one HTML page")
    cr.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR")
    cr.add_argument("--out", type=Path, required=True, help="the HTML file to write")
    cr.set_defaults(fn=cmd_class_report)

    sub.add_parser("reference-run", help="regenerate docs/reference-run (the run nbval checks "
                   "against) after a notebook's change").set_defaults(fn=cmd_reference_run)

    ss = sub.add_parser("score-series",
                        help="score any timestamp,value CSV with the lab's forest")
    ss.add_argument("input", type=Path, help="CSV with a header line `timestamp,value`")
    ss.add_argument("--out", type=Path, required=True,
                    help="CSV to write: timestamp,value,anomaly_score,is_anomaly")
    ss.add_argument("--forest", default=None,
                    help='forest parameters as JSON, e.g. \'{"threshold": 3.5}\'')
    ss.add_argument("--no-seasons", action="store_true",
                    help="compare each value with the recent level only (no daily / weekly / "
                         "yearly season)")
    ss.set_defaults(fn=cmd_score_series)

    ev = sub.add_parser("evaluate",
                        help="run the labelled scenario suite through the real job, per-"
                             "scenario precision / recall / delay / false alarms")
    ev.add_argument("--size", choices=("small", "full"), default="full",
                    help="minutes of event time per scenario: small 30, full 180")
    ev.add_argument("--out", type=Path, default=Path("evaluation"),
                    help="folder for suite.jsonl, scores.csv, evaluation.csv")
    ev.add_argument("--seed", type=int, default=0)
    _job_options(ev)
    ev.set_defaults(fn=cmd_evaluate)
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
