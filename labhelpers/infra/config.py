"""Lab configuration: backend, prefix, region, and every resource name derived from the prefix.

One place for each name: notebooks, the CLI, the job and the tests all ask a ``LabConfig``.
Values come from keyword arguments, then ``LAB_*`` environment variables, then defaults.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import ConfigError

# The backend names; which implementation each selects: labhelpers.backends.
LOCAL, AWS = "local", "aws"
BACKENDS = (LOCAL, AWS)
PREFIX_RE = re.compile(r"^[a-z][a-z0-9-]{2,19}$")
# The checkout (tests, docs/, cloud/); the installed package finds its own files through
# labhelpers.resources, never through this.
REPO_ROOT = Path(__file__).resolve().parents[2]

DEFAULT_PREFIX = "clicklab"
DEFAULT_REGION = "us-east-1"
DEFAULT_EMULATOR_PORT = 4599
# moto's fixed account id; credentials are fake on purpose so nothing can reach AWS by mistake.
LOCAL_ACCOUNT_ID = "123456789012"
LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


# Per user and outside the repository checkout: on a shared server (JupyterHub) every
# student has a home of their own, and one checkout serves the whole class.
DEFAULT_HOME = Path("~/.clicklab")
PORT_FILE = "emulator-port"  # the port this lab home's emulator uses, once chosen


def _default_home() -> Path:
    return Path(os.environ.get("LAB_HOME") or DEFAULT_HOME).expanduser().resolve()


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ours(home: Path, port: int) -> bool:
    """Does this lab home's own emulator hold ``port``? (Its state file names the port.)"""
    return (home / "emulator" / f"moto-{port}.json").exists()


def emulator_port(home: Path, wanted: int | None = None) -> int:
    """The loopback port of this lab home's emulator: ``wanted`` (LAB_EMULATOR_PORT), else
    the one remembered in the home, else the first of 4599, 4600, ... that no other lab home
    on this machine has claimed; a port taken by someone else (another student's lab,
    another program) is never used. The choice is remembered in the home."""
    remembered = home / PORT_FILE
    try:  # the home first: the port is remembered in it
        home.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass
    try:
        known = int(remembered.read_text().strip())
    except (OSError, ValueError):
        known = None
    if wanted and (_ours(home, wanted) or _port_free(wanted)):
        _claim(wanted, home)  # an explicit choice wins over another home's idle claim
        return wanted
    if known and (_ours(home, known) or (_port_free(known) and _claim(known, home))):
        return known
    # A class starts notebook 00 at once: a claim file per port (created exclusively in the
    # machine's temp folder) makes two homes that look at the same free port pick two ports.
    for candidate in range(DEFAULT_EMULATOR_PORT, DEFAULT_EMULATOR_PORT + 2000):
        if _port_free(candidate) and _claim(candidate, home):
            _remember(remembered, candidate)
            return candidate
    while True:  # 2,000 claimed ports: ports the system picks, claimed the same way
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if _claim(port, home):
            _remember(remembered, port)
            return port


def _claim(port: int, home: Path) -> bool:
    """Claim ``port`` for ``home`` on this machine; True if it is (now or already) ours.

    A claim is a file created exclusively, so two homes can never both get one. Claims are
    never taken over (a check-then-take is a race): a port whose home was deleted stays
    skipped, and there are plenty of ports."""
    path = Path(tempfile.gettempdir()) / f"clicklab-port-{port}"
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        try:
            return path.read_text().strip() == str(home)
        except OSError:  # another user's claim
            return False
    except OSError:  # no writable temp folder: rely on the port check alone
        return True
    with os.fdopen(fd, "w") as fh:
        fh.write(str(home))
    return True


def release_port_claims(home: Path | None = None) -> list[int]:
    """Remove this machine's port claims (``clicklab-port-*`` in the temp folder) made for
    ``home`` (default: this lab home); the ports it released. ``make clean`` calls it; the
    home's next start claims a port again."""
    home = (home or _default_home()).resolve()
    released = []
    for path in Path(tempfile.gettempdir()).glob("clicklab-port-*"):
        try:
            if path.read_text().strip() == str(home):
                path.unlink()
                released.append(int(path.name.rsplit("-", 1)[1]))
        except (OSError, ValueError):  # another user's claim, or one being written
            continue
    return sorted(released)


def _remember(path: Path, port: int) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{port}\n")
    except OSError:  # a read-only home still works, it only forgets the choice
        pass


@dataclass(frozen=True)
class World:
    """One of the three places the lab runs, as the stages need to know it.

    Each world has its own backend (``labhelpers.backends.for_config``). A stage asks these
    facts, each named after what follows from it, and never which world it is; the
    configuration picks the world once (``LabConfig.world``).
    """

    name: str
    #: AWS calls go to the local emulator (moto) the lab starts: fake credentials, its fixed
    #: account, names that only this machine sees, nothing billed
    emulator: bool
    #: AWS runs the lab's code (the alert Lambda, the managed Flink app); moto cannot, so on
    #: the emulator the same code runs on this machine
    cloud_runs_code: bool
    #: the template's SNS subscriptions and Firehose archives are created (moto skips them)
    full_template: bool
    #: how long a stack operation may take, and how often to look
    stack_timeout_s: float
    stack_poll_s: float


LOCAL_WORLD = World("local", emulator=True, cloud_runs_code=False, full_template=False,
                    stack_timeout_s=120.0, stack_poll_s=0.2)
REHEARSAL_WORLD = World("aws-on-emulator", emulator=True, cloud_runs_code=False,
                        full_template=False, stack_timeout_s=120.0, stack_poll_s=0.2)
AWS_WORLD = World("aws", emulator=False, cloud_runs_code=True, full_template=True,
                  stack_timeout_s=1800.0, stack_poll_s=5.0)


@dataclass(frozen=True)
class LabConfig:
    """Everything that differs between two runs of the lab.

    backend: ``local`` (default, no account) or ``aws``.
    prefix: 3-20 characters, lowercase letters, digits and ``-``; starts every resource name.
    region: AWS region (the emulator accepts any).
    profile: AWS profile for the ``aws`` backend (None = default credential chain).
    home: folder for local state (stream logs, emulator and app state, run records);
      ``LAB_HOME``, default ``~/.clicklab`` (per user, outside the checkout).
    emulator_port: loopback port of the moto server; ``LAB_EMULATOR_PORT``, else the one
      remembered in the home (``load_config`` picks a free one when 4599 is taken).
    emulated: every AWS call goes to the local emulator (fake credentials, loopback). Always
      true on the local backend; on the aws backend it is the rehearsal without an account
      (``run-lab --backend aws --emulator``, ``LAB_EMULATED=1``).
    """

    backend: str = "local"
    prefix: str = DEFAULT_PREFIX
    region: str = DEFAULT_REGION
    profile: str | None = None
    home: Path = field(default_factory=_default_home)
    emulator_port: int = DEFAULT_EMULATOR_PORT
    emulated: bool | None = None

    def __post_init__(self) -> None:
        if self.emulated is None:
            object.__setattr__(self, "emulated", self.backend == LOCAL)
        if self.backend not in BACKENDS:
            raise ConfigError(
                f"Unknown backend {self.backend!r}",
                f"use one of {', '.join(BACKENDS)} (LAB_BACKEND or backend=...).",
            )
        if self.backend == LOCAL and not self.emulated:
            raise ConfigError("The local backend always runs on the emulator",
                              "leave emulated unset, or use backend 'aws'.")
        if not PREFIX_RE.match(self.prefix):
            raise ConfigError(
                f"Invalid prefix {self.prefix!r}",
                "use 3-20 characters: lowercase letters, digits and '-', starting with a letter "
                "(LAB_PREFIX or prefix=...).",
            )
        if not (1024 <= int(self.emulator_port) <= 65535):
            raise ConfigError(
                f"Invalid emulator port {self.emulator_port}",
                "choose a port between 1024 and 65535 (LAB_EMULATOR_PORT).",
            )

    @property
    def world(self) -> World:
        """Where this lab runs: local, aws rehearsed on the emulator, or aws."""
        if self.backend == LOCAL:
            return LOCAL_WORLD
        return REHEARSAL_WORLD if self.emulated else AWS_WORLD

    # ---- derived names (the template derives the same from its Prefix parameter) ----
    @property
    def stack_name(self) -> str:
        return f"{self.prefix}-stack"

    @property
    def input_stream(self) -> str:
        return f"{self.prefix}-clicks"

    @property
    def scores_stream(self) -> str:
        return f"{self.prefix}-scores"

    @property
    def dead_letter_stream(self) -> str:
        """Where the job sets aside records it cannot use, with the reason."""
        return f"{self.prefix}-dead-letters"

    @property
    def topic_name(self) -> str:
        return f"{self.prefix}-alerts"

    @property
    def inbox_queue(self) -> str:
        """SQS queue subscribed to the alert topic: the local stand-in for e-mail/SMS."""
        return f"{self.prefix}-inbox"

    @property
    def artifacts_bucket(self) -> str:
        """Bucket for deployment artifacts (the alert function's zip); made before the stack."""
        return f"{self.prefix}-artifacts-{self.account_id}-{self.region}"

    @property
    def account_id(self) -> str:
        if self.world.emulator:
            return LOCAL_ACCOUNT_ID
        return self.client("sts").get_caller_identity()["Account"]

    # ---- local folders ----
    @property
    def lab_dir(self) -> Path:
        """Per-prefix state folder: stream logs, app state, poller position."""
        return self.home / self.prefix

    def stream_dir(self, stream: str) -> Path:
        """Folder of the on-disk stream log that stands in for Kinesis stream ``stream``."""
        return self.lab_dir / "streams" / stream

    @property
    def emulator_dir(self) -> Path:
        return self.home / "emulator"

    @property
    def endpoint_url(self) -> str | None:
        return f"http://127.0.0.1:{self.emulator_port}" if self.world.emulator else None

    # ---- clients ----
    def session(self):
        """A boto3 session: fake credentials for the emulator, the user's profile for AWS."""
        import boto3

        if self.world.emulator:
            return boto3.Session(region_name=self.region, **LOCAL_CREDENTIALS)
        return boto3.Session(region_name=self.region, profile_name=self.profile)

    def client(self, service: str):
        """A boto3 client for ``service`` on this backend (the emulator's endpoint when local)."""
        return self.session().client(service, endpoint_url=self.endpoint_url)

    def with_(self, **changes) -> LabConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    # ---- handing the settings to a child process ----
    def to_args(self) -> list[str]:
        """These settings as command-line options for a background process, which reads them
        back with ``from_args``: the one way settings reach a child. A child never reads
        ``LAB_*`` variables, so a notebook's parameters win over the shell it started from."""
        args = ["--backend", self.backend, "--prefix", self.prefix, "--region", self.region,
                "--home", str(self.home), "--emulator-port", str(self.emulator_port),
                "--emulated", "1" if self.emulated else "0"]
        return args + (["--profile", self.profile] if self.profile else [])

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """Add the options ``to_args`` writes to a child's argument parser."""
        for name in ("--backend", "--prefix", "--region", "--home", "--emulated"):
            parser.add_argument(name, required=True)
        parser.add_argument("--emulator-port", type=int, required=True)
        parser.add_argument("--profile", default=None)

    @classmethod
    def from_args(cls, args: argparse.Namespace | Sequence[str]) -> LabConfig:
        """The settings a parent wrote with ``to_args``: parsed options (a parser given
        ``add_arguments``) or the argument list itself. The environment is not read."""
        if not isinstance(args, argparse.Namespace):
            parser = argparse.ArgumentParser(add_help=False)
            cls.add_arguments(parser)
            args = parser.parse_known_args(list(args))[0]
        return cls(backend=args.backend, prefix=args.prefix, region=args.region,
                   profile=args.profile or None, home=Path(args.home),
                   emulator_port=int(args.emulator_port), emulated=args.emulated == "1")


def load_config(**overrides) -> LabConfig:
    """Build a validated config from ``overrides``, then ``LAB_*`` variables, then defaults.

    Recognised variables: LAB_BACKEND, LAB_PREFIX, LAB_REGION, LAB_PROFILE, LAB_HOME,
    LAB_EMULATOR_PORT, LAB_EMULATED. Unknown keyword arguments are an error.
    """
    known = {"backend", "prefix", "region", "profile", "home", "emulator_port", "emulated"}
    unknown = set(overrides) - known
    if unknown:
        raise ConfigError(
            f"Unknown setting(s) {', '.join(sorted(unknown))}",
            f"use only {', '.join(sorted(known))}.",
        )
    env = {
        "backend": os.environ.get("LAB_BACKEND"),
        "prefix": os.environ.get("LAB_PREFIX"),
        "region": os.environ.get("LAB_REGION"),
        "profile": os.environ.get("LAB_PROFILE"),
        "emulator_port": os.environ.get("LAB_EMULATOR_PORT"),
        "emulated": os.environ.get("LAB_EMULATED"),
    }
    values = {k: v for k, v in env.items() if v}
    # "" (a notebook's parameters cell left empty) means "not set here": LAB_* or the default
    values.update({k: v for k, v in overrides.items() if v is not None and v != ""})
    if "emulator_port" in values:
        try:
            values["emulator_port"] = int(values["emulator_port"])
        except ValueError:
            raise ConfigError(
                f"Emulator port {values['emulator_port']!r} is not a number",
                "set LAB_EMULATOR_PORT to a port number such as 4599.",
            ) from None
    if isinstance(values.get("emulated"), str):
        values["emulated"] = values["emulated"].strip().lower() in ("1", "true", "yes")
    values["home"] = Path(values["home"]).expanduser().resolve() if "home" in values else (
        _default_home())
    # a free port when the wanted one is taken: a class shares one server
    values["emulator_port"] = emulator_port(values["home"], values.get("emulator_port"))
    return LabConfig(**values)
