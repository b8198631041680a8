"""The AWS services the lab's local emulator serves: the one list, and how moto is held to it.

moto's server loads a service's code on its first request; but its CloudFormation support
imports some thirty services' models at once (EC2, RDS, SageMaker, ...) so that a template
can name any of them. The lab's template and code use a dozen. ``restrict`` replaces the
other services that CloudFormation imports by empty stand-ins before moto is imported, and
``ServiceGate`` answers a request for a service not in the list with an error that says how
to load every service. Measured (docs/performance.md): the emulator's resident memory after
the stack is deployed, 209 MB with every service, 107 MB with these.

``LAB_EMULATOR_SERVICES=all`` (read by ``labhelpers.infra.emulator.start``) serves every
service moto has, as before.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import sys
import types
from collections.abc import Iterable, Mapping

ENV = "LAB_EMULATOR_SERVICES"
ALL = "all"

# What the lab calls (boto3 client names), and why:
SERVICES: tuple[str, ...] = (
    "cloudformation",  # the stack (infra.stack)
    "iam",  # the template's roles; credentials checks
    "kinesis",  # the aws backend's streams (rehearsed on the emulator), the template
    "lambda",  # the alert function and its event source mapping (template, alerts.demo)
    "logs",  # the template's log groups; the managed app's logs; inventory
    "s3",  # the raw and processed buckets, the alert episodes' claims
    "sns",  # the alert topic
    "sqs",  # the inbox queue
    "sts",  # who am I (credentials, ARNs)
    "firehose",  # inventory: delivery streams left over
    "kinesisanalyticsv2",  # inventory: managed applications left over
    "resourcegroupstaggingapi",  # inventory: anything still tagged with the lab's prefix
)

# boto3's name -> moto's backend name, where they differ
_MOTO_NAMES = {"lambda": "awslambda"}
# moto's own endpoints (/moto-api: reset, config), always served
_ALWAYS = frozenset({"moto_api", "moto_api._internal"})
# what moto's CloudFormation support imports (moto/cloudformation/parsing.py), by package
_CLOUDFORMATION_IMPORTS = (
    "apigateway", "autoscaling", "awslambda", "batch", "cloudwatch", "datapipeline",
    "dynamodb", "ec2", "ecr", "ecs", "efs", "elb", "elbv2", "emr", "events", "iam", "iot",
    "kinesis", "kms", "rds", "redshift", "route53", "s3", "sagemaker", "sns", "sqs", "ssm",
    "stepfunctions",
)
# kept although the lab does not call them: CloudFormation reads SSM parameters, and the
# lab's services import these at start (Lambda: ECR images, CloudWatch metrics; S3: KMS)
_NEEDED_BY_OTHERS = frozenset({"ssm", "ecr", "cloudwatch", "kms", "events", "dynamodb"})


def selected(value: str | None) -> tuple[str, ...] | None:
    """The services to serve from ``LAB_EMULATOR_SERVICES``'s value: None (every service) for
    "all"; the lab's list when empty or unset; else the comma-separated names, checked."""
    if value is None or not value.strip():
        return SERVICES
    if value.strip().lower() == ALL:
        return None
    names = tuple(n.strip().lower() for n in value.split(",") if n.strip())
    unknown = [n for n in names if n not in SERVICES]
    if unknown:
        raise ValueError(f"{ENV}={value!r}: {', '.join(unknown)} not served by the lab's "
                         f"emulator; give '{ALL}' or names from: {', '.join(SERVICES)}")
    return names


def moto_backends(services: Iterable[str]) -> frozenset[str]:
    """moto's backend names for boto3 service names (plus moto's own API)."""
    return frozenset(_MOTO_NAMES.get(s, s) for s in services) | _ALWAYS


class _Placeholder(types.ModuleType):
    """An empty stand-in for a service's package: any name imported from it is a new empty
    class (so ``isinstance(x, ec2.TaggedEC2Resource)`` is simply False)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.__path__: list[str] = []  # a package: submodules are placeholders too

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        value = type(attr, (), {"__module__": self.__name__})
        setattr(self, attr, value)
        return value


class _PlaceholderFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, packages: frozenset[str]) -> None:
        self.packages = packages

    def find_spec(self, fullname, path=None, target=None):  # noqa: ARG002
        parts = fullname.split(".")
        if len(parts) >= 2 and parts[0] == "moto" and parts[1] in self.packages:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return _Placeholder(spec.name)

    def exec_module(self, module) -> None:
        pass


def placeholders(services: Iterable[str] | None) -> frozenset[str]:
    """The moto packages replaced by placeholders when serving ``services`` (None: none)."""
    if services is None:
        return frozenset()
    keep = moto_backends(services) | _NEEDED_BY_OTHERS
    return frozenset(p for p in _CLOUDFORMATION_IMPORTS if p not in keep)


def restrict(services: Iterable[str] | None) -> frozenset[str]:
    """Before moto is imported: replace the services CloudFormation would import and the
    lab does not use by placeholders. Returns the packages replaced."""
    stubbed = placeholders(services)
    if stubbed:
        loaded = [m for m in sys.modules if m.split(".")[:2] in (["moto", p] for p in stubbed)]
        if loaded:
            raise RuntimeError(f"restrict() must run before moto imports {loaded[0]}")
        sys.meta_path.insert(0, _PlaceholderFinder(stubbed))
    return stubbed


class ServiceGate:
    """moto's per-service app factory, serving only ``services`` (None: all): a request for
    another service gets HTTP 501 with an error that says how to load it."""

    def __init__(self, create_app, services: Iterable[str] | None) -> None:
        self.create_app = create_app
        self.services = tuple(services) if services is not None else None
        self.allowed = None if services is None else moto_backends(services)

    def __call__(self, backend: str):
        if self.allowed is None or backend in self.allowed:
            return self.create_app(backend)
        return _refusal(backend, self.services or ())


def _refusal(backend: str, services: Iterable[str]):
    service = {v: k for k, v in _MOTO_NAMES.items()}.get(backend, backend)
    body = json.dumps({
        "__type": "ServiceNotLoaded",
        "message": (f"The lab's emulator does not serve {service} (it serves "
                    f"{', '.join(services)}); set {ENV}={ALL} and restart the emulator "
                    f"(python -m labhelpers emulator stop, then start)."),
    }).encode()

    def app(environ: Mapping, start_response):  # noqa: ARG001
        start_response("501 Not Implemented",
                       [("Content-Type", "application/x-amz-json-1.1"),
                        ("Content-Length", str(len(body)))])
        return [body]

    return app
