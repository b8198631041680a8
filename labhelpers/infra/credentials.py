"""Checks before anything is done on AWS: credentials that work, a region that has the services.

Each failure is a ``CredentialsError`` whose message says what is wrong and what to run. No
function here prints or returns a secret: only the account id, the profile name and the region.
On the local backend the emulator's fake credentials are always fine and nothing is called.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
)
from botocore.parsers import ResponseParserError

from ..errors import LabError, aws_error_code
from .config import LabConfig

# Every service the aws backend calls; a region must offer all of them.
LAB_SERVICES = (
    "cloudformation", "s3", "kinesis", "firehose", "sns", "sqs", "lambda", "iam", "logs",
    "kinesisanalyticsv2",
)
_EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"}
_INVALID = {"InvalidClientTokenId", "SignatureDoesNotMatch", "UnrecognizedClientException",
            "AuthFailure", "InvalidAccessKeyId"}


# What the aws backend creates or calls, checked with IAM's policy simulator before anything is
# created (the simulator answers for the caller's own policies, boundaries included).
REQUIRED_ACTIONS = (
    "cloudformation:CreateStack", "cloudformation:DeleteStack", "s3:CreateBucket",
    "s3:PutObject", "kinesis:CreateStream", "kinesis:PutRecords", "kinesis:GetRecords",
    "firehose:CreateDeliveryStream", "sns:CreateTopic", "sns:Subscribe", "sqs:CreateQueue",
    "sqs:ReceiveMessage", "lambda:CreateFunction", "lambda:CreateEventSourceMapping",
    "iam:CreateRole", "iam:PassRole", "logs:CreateLogGroup", "logs:FilterLogEvents",
    "kinesisanalytics:CreateApplication", "kinesisanalytics:StartApplication",
)
_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
           "UnauthorizedException", "AuthorizationError", "Forbidden"}


class CredentialsError(LabError):
    """AWS credentials or the chosen region cannot be used for the lab."""


def default_region(profile: str | None = None) -> str | None:
    """The region the AWS tools would use: AWS_REGION / AWS_DEFAULT_REGION, then the profile's
    ``region`` in ~/.aws/config; None when neither is set (the lab then uses its default)."""
    import boto3

    try:
        return boto3.Session(profile_name=profile).region_name
    except ProfileNotFound:
        return None


def permission_error(cfg: LabConfig, err: ClientError, action: str) -> CredentialsError | None:
    """One sentence for a call refused for missing permissions, or None for other errors.

    action: the IAM action that was called, e.g. ``kinesis:CreateStream``.
    """
    code = aws_error_code(err)
    if code not in _DENIED:
        return None
    return CredentialsError(
        f"Your credentials ({_who(cfg)}) may not call {action} in {cfg.region} ({code})",
        f"ask your AWS administrator to allow {action} for your user or role (the lab needs "
        f"{', '.join(a.split(':')[0] for a in REQUIRED_ACTIONS[::4])} and more: see "
        "labhelpers.infra.credentials.REQUIRED_ACTIONS), or use the local backend.",
    )


def _policy_source(arn: str) -> str | None:
    """The IAM principal whose policies apply to ``arn`` (an assumed role's role); None for
    the account's root user, which is allowed everything."""
    parts = arn.split(":", 5)
    if len(parts) < 6 or parts[5] == "root":
        return None
    partition, account, resource = parts[1], parts[4], parts[5]
    if resource.startswith("assumed-role/"):
        role = resource.split("/")[1]
        return f"arn:{partition}:iam::{account}:role/{role}"
    return arn


def lab_resource_arns(cfg: LabConfig, account: str) -> dict[str, str]:
    """For each of REQUIRED_ACTIONS, the ARN of a resource the lab creates or calls it on.

    Simulating on these, not on "*", keeps a least-privilege policy scoped to the lab's names
    (``clicklab-*``) from being reported as missing. Roles get CloudFormation's generated
    names (``<stack>-<logical id>-<suffix>``); the suffix here is a sample.
    """
    import boto3

    partition = boto3.Session().get_partition_for_region(cfg.region)
    r, p, stack = cfg.region, cfg.prefix, cfg.stack_name
    arn = f"arn:{partition}"
    role = f"{arn}:iam::{account}:role/{stack}-AppRole-EXAMPLE0001"
    return {
        "cloudformation:CreateStack": f"{arn}:cloudformation:{r}:{account}:stack/{stack}/x",
        "cloudformation:DeleteStack": f"{arn}:cloudformation:{r}:{account}:stack/{stack}/x",
        "s3:CreateBucket": f"{arn}:s3:::{p}-artifacts-{account}-{r}",
        "s3:PutObject": f"{arn}:s3:::{p}-artifacts-{account}-{r}/flink-app/x.zip",
        "kinesis:CreateStream": f"{arn}:kinesis:{r}:{account}:stream/{p}-clicks",
        "kinesis:PutRecords": f"{arn}:kinesis:{r}:{account}:stream/{p}-clicks",
        "kinesis:GetRecords": f"{arn}:kinesis:{r}:{account}:stream/{p}-scores",
        "firehose:CreateDeliveryStream": f"{arn}:firehose:{r}:{account}:deliverystream/"
                                         f"{p}-raw-archive",
        "sns:CreateTopic": f"{arn}:sns:{r}:{account}:{p}-alerts",
        "sns:Subscribe": f"{arn}:sns:{r}:{account}:{p}-alerts",
        "sqs:CreateQueue": f"{arn}:sqs:{r}:{account}:{p}-inbox",
        "sqs:ReceiveMessage": f"{arn}:sqs:{r}:{account}:{p}-inbox",
        "lambda:CreateFunction": f"{arn}:lambda:{r}:{account}:function:{p}-alert",
        "lambda:CreateEventSourceMapping": "*",  # no resource-level permission
        "iam:CreateRole": role,
        "iam:PassRole": role,
        "logs:CreateLogGroup": f"{arn}:logs:{r}:{account}:log-group:/aws/lambda/{p}-alert",
        "logs:FilterLogEvents": f"{arn}:logs:{r}:{account}:log-group:"
                                f"/aws/kinesis-analytics/{p}-analytics",
        "kinesisanalytics:CreateApplication": f"{arn}:kinesisanalytics:{r}:{account}:"
                                              f"application/{p}-analytics",
        "kinesisanalytics:StartApplication": f"{arn}:kinesisanalytics:{r}:{account}:"
                                             f"application/{p}-analytics",
    }


def check_permissions(cfg: LabConfig, session, caller_arn: str,
                      actions: tuple[str, ...] = REQUIRED_ACTIONS) -> list[str] | None:
    """The ``actions`` the caller may not perform on the lab's resources, by IAM's policy
    simulator; None when that cannot be told (the simulator is not allowed or not offered):
    then the calls themselves say so, through ``permission_error``.

    An action whose result depends on request context the simulator lacks (MFA, source IP)
    is not reported: only a clear "not allowed" stops the lab before it starts.
    """
    from botocore.config import Config

    source = _policy_source(caller_arn)
    if source is None:
        return []
    account = caller_arn.split(":")[4]
    resources = lab_resource_arns(cfg, account)
    iam = session.client("iam", endpoint_url=cfg.endpoint_url,
                         config=Config(retries={"max_attempts": 1, "mode": "standard"}))
    by_resource: dict[str, list[str]] = {}
    for action in actions:
        by_resource.setdefault(resources.get(action, "*"), []).append(action)
    denied: list[str] = []
    try:
        if ":role/" in source:
            # A role's ARN may carry a path that the assumed-role ARN leaves out.
            source = iam.get_role(RoleName=source.rsplit("/", 1)[1])["Role"]["Arn"]
        for resource, names in by_resource.items():
            pages = iam.get_paginator("simulate_principal_policy").paginate(
                PolicySourceArn=source, ActionNames=names, ResourceArns=[resource])
            for page in pages:
                denied += [r["EvalActionName"] for r in page.get("EvaluationResults", [])
                           if r.get("EvalDecision") != "allowed"
                           and not r.get("MissingContextValues")]
    except (ClientError, BotoCoreError, ResponseParserError):
        # No iam:SimulatePrincipalPolicy / iam:GetRole, or no simulator (the emulator answers
        # HTTP 500 with an HTML page, which botocore cannot parse).
        return None
    return [a for a in actions if a in denied]


def _who(cfg: LabConfig) -> str:
    return f"profile {cfg.profile!r}" if cfg.profile else "the default credential chain"


def _login_fix(cfg: LabConfig) -> str:
    flag = f" --profile {cfg.profile}" if cfg.profile else ""
    return (f"sign in again (`aws sso login{flag}` for IAM Identity Center, or new keys with "
            f"`aws configure{flag}`), then run the step again.")


def check_region(cfg: LabConfig, services: tuple[str, ...] = LAB_SERVICES) -> None:
    """CredentialsError if ``cfg.region`` is not a region botocore knows for ``services``.

    Uses the endpoint data that ships with botocore (no call), so a typo is caught before the
    credentials are tried. botocore lists most services for every region of a partition, so
    ``check`` also probes the managed Flink and Firehose APIs in the region.
    """
    import boto3

    session = boto3.Session()
    partitions = session.get_available_partitions()
    missing = []
    for service in services:
        regions = {r for p in partitions for r in session.get_available_regions(service, p)}
        if regions and cfg.region not in regions:
            missing.append(service)
    if missing:
        offered = sorted(session.get_available_regions("kinesisanalyticsv2"))
        raise CredentialsError(
            f"Region {cfg.region!r} does not offer {', '.join(missing)} (needed by the lab)",
            f"choose a region that has them, e.g. {', '.join(offered[:6])} "
            "(LAB_REGION or region=...).",
        )


def _probe_services(cfg: LabConfig, session) -> None:
    """Call a cheap read of each regional service that not every region has."""
    for service, call in (("kinesisanalyticsv2", "list_applications"),
                          ("firehose", "list_delivery_streams")):
        try:
            getattr(session.client(service, endpoint_url=cfg.endpoint_url), call)(Limit=1)
        except EndpointConnectionError as err:
            raise CredentialsError(
                f"Region {cfg.region} does not answer for {service} (the service is not offered "
                "there, or the network is down)",
                "choose a region with Managed Service for Apache Flink, such as us-east-1, "
                "eu-west-1 or ap-southeast-2 (LAB_REGION or region=...).",
            ) from err
        except ClientError as err:
            code = aws_error_code(err)
            if code in ("AccessDeniedException", "AccessDenied"):
                raise CredentialsError(
                    f"Your credentials may not use {service} in {cfg.region} ({code})",
                    "use a user or role allowed to manage Kinesis, Firehose, Managed Service "
                    "for Apache Flink, Lambda, SNS, S3, IAM and CloudFormation.",
                ) from err
            raise


def check(cfg: LabConfig) -> dict[str, Any]:
    """Verify that the aws backend can call AWS; returns ``{account, region, profile}``.

    Uses the standard credential chain (environment, ``LAB_PROFILE`` / AWS_PROFILE profiles
    with SSO or assumed roles, instance or container roles). Raises CredentialsError, one
    sentence and the fix, for: unknown profile, no credentials, partial or invalid keys,
    expired session or SSO token, unreachable endpoint, a region without the lab's services,
    and actions the caller may not perform (IAM's policy simulator, when it may be asked).
    Nothing is created.
    """
    if cfg.world.emulator:  # fake credentials on loopback: nothing to check
        return {"account": cfg.account_id, "region": cfg.region, "profile": None}
    check_region(cfg)
    try:
        session = cfg.session()
        ident = session.client("sts", endpoint_url=cfg.endpoint_url).get_caller_identity()
        _probe_services(cfg, session)
        denied = check_permissions(cfg, session, ident.get("Arn", ""))
        if denied:
            raise CredentialsError(
                f"Your credentials ({_who(cfg)}) may not perform {', '.join(denied[:6])}"
                + (f" and {len(denied) - 6} more" if len(denied) > 6 else "")
                + f" in {cfg.region}, which the lab needs",
                "ask your AWS administrator to allow them for your user or role (the list is "
                "labhelpers.infra.credentials.REQUIRED_ACTIONS), or use the local backend.",
            )
    except ProfileNotFound as err:
        raise CredentialsError(
            f"AWS profile {cfg.profile!r} is not configured on this machine",
            f"create it with `aws configure --profile {cfg.profile}` (or `aws configure sso`), "
            "or set LAB_PROFILE to a profile listed by `aws configure list-profiles`.",
        ) from err
    except (NoCredentialsError, PartialCredentialsError) as err:
        raise CredentialsError(
            f"No usable AWS credentials found through {_who(cfg)} ({type(err).__name__})",
            "run `aws configure` (or `aws sso login`), or set LAB_PROFILE to a configured "
            "profile; the local backend needs no account.",
        ) from err
    except NoRegionError as err:
        raise CredentialsError("No AWS region is set",
                               "set LAB_REGION (e.g. us-east-1) or pass region=...") from err
    except EndpointConnectionError as err:
        raise CredentialsError(
            f"Could not reach AWS in {cfg.region}: {err}",
            "check your network connection and the region name, then try again.",
        ) from err
    except ClientError as err:
        code = aws_error_code(err)
        if code in _EXPIRED:
            raise CredentialsError(
                f"The AWS session of {_who(cfg)} has expired ({code})", _login_fix(cfg)
            ) from err
        if code in _INVALID:
            raise CredentialsError(
                f"AWS rejected the credentials of {_who(cfg)} ({code}): the keys are wrong, "
                "deleted, or not valid in this partition",
                _login_fix(cfg),
            ) from err
        raise CredentialsError(f"Checking the AWS credentials failed ({code})",
                               _login_fix(cfg)) from err
    except BotoCoreError as err:
        # SSO and credential-process failures (expired SSO token, no cache) land here.
        name = type(err).__name__
        if "Token" in name or "SSO" in name:
            raise CredentialsError(
                f"The AWS sign-in of {_who(cfg)} has expired or is missing ({name})",
                _login_fix(cfg),
            ) from err
        raise CredentialsError(f"Could not load AWS credentials for {_who(cfg)} ({name})",
                               _login_fix(cfg)) from err
    return {"account": ident["Account"], "region": cfg.region, "profile": cfg.profile}
