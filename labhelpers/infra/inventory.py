"""What the lab left behind: every resource still named or tagged with the lab's prefix.

``leftovers`` lists by name (S3, Kinesis, SNS, SQS, CloudFormation, Lambda, log groups, IAM,
Firehose, Managed Flink); ``tagged_resources`` asks the Resource Groups Tagging API for the
``lab-prefix`` tag. The cleanup (``labhelpers.run.cleanup``) reports both after a delete.
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from . import emulator
from .config import LabConfig
from .stack import TAG_KEY, _Clients, _error_text

# CloudWatch log group namespaces of the lab's log groups (Lambda, Flink app, Firehose).
LOG_NAMESPACES = ("/aws/lambda/", "/aws/kinesis-analytics/", "/aws/kinesisfirehose/")


def leftovers(cfg: LabConfig) -> list[str]:
    """Everything that still exists with the lab's prefix, one line each; [] when all is gone."""
    emulator.ensure_running(cfg)
    p = cfg.prefix + "-"
    found: list[str] = []
    client = _Clients(cfg)

    def check(what: str, lister, show=lambda name: name) -> None:
        try:
            found.extend(f"{what} {show(name)}" for name in lister() if name.startswith(p))
        except (ClientError, BotoCoreError) as err:
            found.append(f"{what}s could not be checked ({_error_text(err)})")

    def buckets():
        return [b["Name"] for b in client("s3").list_buckets().get("Buckets", [])]

    def streams():
        kinesis = client("kinesis")
        names: list[str] = []
        for page in kinesis.get_paginator("list_streams").paginate():
            names.extend(page.get("StreamNames", []))
        return names

    def topics():
        sns = client("sns")
        arns = [t["TopicArn"] for page in sns.get_paginator("list_topics").paginate()
                for t in page.get("Topics", [])]
        return [a.rsplit(":", 1)[-1] for a in arns]

    def queues():
        urls = client("sqs").list_queues(QueueNamePrefix=p).get("QueueUrls", [])
        return [u.rstrip("/").rsplit("/", 1)[-1] for u in urls]

    def stacks():
        cf = client("cloudformation")
        return [s["StackName"] for page in cf.get_paginator("list_stacks").paginate()
                for s in page.get("StackSummaries", []) if s["StackStatus"] != "DELETE_COMPLETE"]

    def functions():
        lam = client("lambda")
        return [f["FunctionName"] for page in lam.get_paginator("list_functions").paginate()
                for f in page.get("Functions", [])]

    full_log_names: dict[str, str] = {}

    def log_groups():
        logs = client("logs")
        for namespace in LOG_NAMESPACES:
            groups = logs.describe_log_groups(logGroupNamePrefix=f"{namespace}{p}").get(
                "logGroups", [])
            # Filter by the part after the namespace (the prefix starts it), show the full name.
            for g in groups:
                full_log_names[g["logGroupName"].removeprefix(namespace)] = g["logGroupName"]
        return list(full_log_names)

    def delivery_streams():
        return client("firehose").list_delivery_streams(Limit=100).get(
            "DeliveryStreamNames", [])

    def flink_apps():
        kda = client("kinesisanalyticsv2")
        return [a["ApplicationName"] for a in kda.list_applications().get(
            "ApplicationSummaries", [])]

    def roles():
        iam = client("iam")
        return [r["RoleName"] for page in iam.get_paginator("list_roles").paginate()
                for r in page.get("Roles", [])]

    check("S3 bucket", buckets)
    check("Kinesis stream", streams)
    check("SNS topic", topics)
    check("SQS queue", queues)
    check("CloudFormation stack", stacks)
    check("Lambda function", functions)
    check("log group", log_groups, lambda name: full_log_names.get(name, name))
    check("IAM role", roles)
    check("Firehose delivery stream", delivery_streams)
    check("Managed Flink application", flink_apps)
    return found


def tagged_resources(cfg: LabConfig) -> list[str]:
    """ARNs of everything still tagged ``lab-prefix=<prefix>`` (Resource Groups Tagging API).

    On AWS the tagging index lags: a resource deleted a minute ago may still be listed.
    """
    emulator.ensure_running(cfg)
    tagging = cfg.client("resourcegroupstaggingapi")
    arns: list[str] = []
    try:
        for page in tagging.get_paginator("get_resources").paginate(
                TagFilters=[{"Key": TAG_KEY, "Values": [cfg.prefix]}]):
            arns += [r["ResourceARN"] for r in page.get("ResourceTagMappingList", [])]
    except (ClientError, BotoCoreError) as err:
        return [f"tagged resources could not be listed ({_error_text(err)})"]
    return sorted(arns)

