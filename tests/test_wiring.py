"""Subscriptions and their confirmation state, the SMS sandbox, the destination wiring."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from labhelpers.infra import stack
from labhelpers.infra.config import LabConfig
from labhelpers.monitor import wiring

TOPIC = "arn:aws:sns:us-east-1:123456789012:x-alerts"


class FakeSns:
    """The few SNS calls the module makes, answering like AWS does."""

    def __init__(self, subs, attributes=None, sandbox=None, numbers=None, error=None):
        self.subs, self.attributes = subs, attributes or {}
        self.sandbox, self.numbers, self.error = sandbox, numbers or [], error

    def get_paginator(self, name):
        assert name == "list_subscriptions_by_topic"
        subs = self.subs

        class Pages:
            def paginate(self, TopicArn):  # noqa: N803 - boto3's argument name
                assert TopicArn == TOPIC
                return [{"Subscriptions": subs}]

        return Pages()

    def get_subscription_attributes(self, SubscriptionArn):  # noqa: N803
        return {"Attributes": self.attributes.get(SubscriptionArn, {})}

    def get_sms_sandbox_account_status(self):
        if self.error:
            raise ClientError({"Error": {"Code": "AuthorizationError", "Message": "denied"}},
                              "GetSMSSandboxAccountStatus")
        return {"IsInSandbox": self.sandbox}

    def list_sms_sandbox_phone_numbers(self):
        return {"PhoneNumbers": self.numbers}


@pytest.fixture()
def fake_sns(monkeypatch):
    def install(fake):
        monkeypatch.setattr(LabConfig, "client", lambda self, service: fake)
    return install


@pytest.mark.parametrize("arn, attrs, state", [
    ("PendingConfirmation", None, wiring.PENDING),
    ("arn:aws:sns:us-east-1:1:t:abc", {"PendingConfirmation": "true"}, wiring.PENDING),
    ("arn:aws:sns:us-east-1:1:t:abc", {"PendingConfirmation": "false"}, wiring.CONFIRMED),
    ("arn:aws:sns:us-east-1:1:t:abc", {}, wiring.CONFIRMED),
    ("Deleted", None, "deleted"),
])
def test_subscription_state(arn, attrs, state):
    assert wiring.subscription_state(arn, attrs) == state


def test_pending_email_and_sms_are_shown_masked(fake_sns, tmp_path):
    fake_sns(FakeSns(
        subs=[{"SubscriptionArn": "PendingConfirmation", "Protocol": "email",
               "Endpoint": "student@example.com"},
              {"SubscriptionArn": "arn:aws:sns:us-east-1:1:x-alerts:s1", "Protocol": "sms",
               "Endpoint": "+14155550100"}],
        attributes={"arn:aws:sns:us-east-1:1:x-alerts:s1": {"PendingConfirmation": "false"}}))
    cfg = LabConfig(backend="aws", home=tmp_path)
    df = wiring.subscriptions(cfg, topic_arn=TOPIC)
    assert list(df.columns) == list(wiring.SUBSCRIPTION_COLUMNS)
    rows = df.to_dict("records")
    assert rows[0]["state"] == wiring.PENDING and rows[0]["protocol"] == "email"
    assert rows[1]["state"] == wiring.CONFIRMED and "sandbox" in rows[1]["what"]
    text = df.to_string()
    assert "student@example.com" not in text and "4155550100" not in text, "contacts masked"
    assert rows[0]["endpoint"] == stack.mask_contact("student@example.com")


def test_sms_sandbox_lists_verified_numbers_masked(fake_sns, tmp_path):
    fake_sns(FakeSns([], sandbox=True,
                     numbers=[{"PhoneNumber": "+14155550100", "Status": "Verified"}]))
    got = wiring.sms_sandbox(LabConfig(backend="aws", home=tmp_path))
    assert got["in_sandbox"] is True and "verified" in got["note"]
    assert got["verified_numbers"] == [{"number": stack.mask_contact("+14155550100"),
                                        "status": "Verified"}]


def test_sms_sandbox_unreadable_says_why(fake_sns, tmp_path):
    fake_sns(FakeSns([], error=True))
    got = wiring.sms_sandbox(LabConfig(backend="aws", home=tmp_path))
    assert got["in_sandbox"] is None and "AuthorizationError" in got["note"]


def test_sms_sandbox_local_has_no_sms(tmp_path):
    got = wiring.sms_sandbox(LabConfig(home=tmp_path))
    assert got["in_sandbox"] is None and "inbox" in got["note"]


@pytest.mark.integration
def test_subscriptions_and_destinations_on_the_emulator(emulator_cfg):
    cfg = emulator_cfg.with_(prefix="testwiring")
    outs = stack.deploy(cfg, progress=False)
    try:
        subs = wiring.subscriptions(cfg)
        assert subs.to_dict("records") == [{
            "protocol": "sqs", "endpoint": cfg.inbox_queue, "state": wiring.CONFIRMED,
            "raw_delivery": False, "what": wiring._WHAT["sqs"]}]
        cfg.client("sns").subscribe(TopicArn=outs["AlertTopicArn"], Protocol="email",
                                    Endpoint="student@example.com")
        subs = wiring.subscriptions(cfg)
        assert sorted(subs["protocol"]) == ["email", "sqs"]
        assert "student@example.com" not in subs.to_string()

        dest = wiring.destinations(cfg)
        assert list(dest.columns) == list(wiring.DESTINATION_COLUMNS)
        hops = {(r["from"].split()[0], r["to"].split()[0]): r for r in dest.to_dict("records")}
        mapping = hops[("scores", "alert")]
        assert mapping["state"] == "Enabled", mapping
        assert "batches of 100" in mapping["how"] and "alert-failures" in mapping["how"]
        assert "local runner" in mapping["how"]
        assert hops[("alert", "SNS")]["state"] == "configured"
        assert hops[("alert", "bucket")]["state"] == "configured"
        assert hops[("input", "analytics")]["state"] == "app not running"
        assert {r["to"].split()[0] for r in dest.to_dict("records")
                if r["from"].startswith("SNS topic")} == {"email", "sqs"}
    finally:
        stack.delete(cfg, progress=False)


def test_styled_shows_every_text_left_aligned():
    import pandas as pd

    long = "x" * 200
    html = wiring.styled(pd.DataFrame([{"from": "a", "how": long}])).to_html()
    assert long in html and "text-align: left" in html
    assert ">0<" not in html, "no index column"
