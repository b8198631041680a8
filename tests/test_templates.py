"""Tests of labhelpers.generate.templates and .placeholders: syntax, placeholders, errors with
positions, files, preview."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest

from labhelpers.errors import GeneratorError
from labhelpers.generate.placeholders import RenderContext
from labhelpers.generate.templates import (
    BUILTIN_TEMPLATES,
    Template,
    load_templates,
    parse_templates,
    preview,
    resolve,
    templates_to_text,
)
from labhelpers.job.contracts import MAX_RECORD_CHARS, check_record, parse_event_time

START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
RICH = """{"browseraction": "Click",
 "n": {{number(1, 9)}}, "label": "item-{{number(1, 9)}}", "f": {{float(0, 1, 3)}},
 "c": "{{choice('a', 'b', 'c')}}", "w": "{{weighted({'x': 9, 'y': 1})}}",
 "u": "{{uuid}}", "ip": "{{ipv4}}", "ua": "{{user_agent}}", "who": "{{name}}",
 "b": {{bool(0.5)}}, "t": "{{timestamp}}", "ms": {{timestamp("epoch_ms")}},
 "s": "{{site}}", "k": {{seq}}, "list": [{{number(5, 5)}}, "{{choice([1, 2])}}"]}"""


def render(t: Template, n: int, seed: int = 0, site: str = "example.com") -> list[dict]:
    fn = t.bind(site, RenderContext(seed))
    base = round(START.timestamp() * 1000)
    out = []
    for i in range(n):
        ms = base + i * 250
        ts = datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        out.append(json.loads(fn(ms, ts + "Z")))
    return out


def test_placeholders_render_typed_values_in_contract_records():
    t = Template("Rich", RICH)
    recs = render(t, 400)
    for r in recs:
        assert list(r)[:3] == ["browseraction", "site", "event_time"], f"field order {list(r)}"
        assert check_record(json.dumps(r))[1] is None, f"record breaks the contract: {r}"
        assert isinstance(r["n"], int) and 1 <= r["n"] <= 9, f"number(1, 9) gave {r['n']!r}"
        assert r["label"].startswith("item-") and r["label"][5:].isdigit(), r["label"]
        assert isinstance(r["f"], float) and 0 <= r["f"] <= 1, f"float gave {r['f']!r}"
        assert r["c"] in "abc" and isinstance(r["b"], bool), r
        assert uuid.UUID(r["u"]).version == 4, f"not a v4 UUID: {r['u']}"
        assert len(r["ip"].split(".")) == 4, f"not an IPv4 address: {r['ip']}"
        assert r["ua"] and r["who"], f"Faker values missing: {r}"
        assert r["t"] == r["event_time"], "timestamp is the record's event time"
        assert r["ms"] == round(parse_event_time(r["event_time"]).timestamp() * 1000), r
        assert r["s"] == "example.com" and r["list"][0] == 5, r
    assert [r["k"] for r in recs] == list(range(1, 401)), "seq counts 1, 2, ... per stream"
    w = Counter(r["w"] for r in recs)
    assert 320 <= w["x"] <= 390, f"weighted 9:1 over 400 records gave {w}"
    assert len({r["n"] for r in recs}) == 9, "number(1, 9) should reach every value"
    assert len({r["u"] for r in recs}) == 400, "UUIDs must not repeat"


def test_same_seed_same_values_other_seed_other_values():
    t = Template("Rich", RICH)
    a, b, c = render(t, 50, seed=3), render(t, 50, seed=3), render(t, 50, seed=4)
    assert a == b, "the same seed must render the same records"
    assert a != c, "another seed should render other values"


def test_faker_values_are_pooled_but_fresh_until_the_pool_is_full():
    t = Template("P", '{"browseraction": "Click", "who": "{{name}}"}')
    fn = t.bind("s", RenderContext(seed=1, pool_size=20))
    names = [json.loads(fn(0, "x"))["who"] for _ in range(300)]
    assert len(set(names[:20])) >= 18, "the first pool_size values come fresh from Faker"
    assert set(names[20:]) <= set(names[:20]), "then values are drawn from the pool"
    fresh = t.bind("s", RenderContext(seed=1, pool_size=0))
    assert len({json.loads(fresh(0, "x"))["who"] for _ in range(100)}) > 60, "pool 0: fresh"


def test_kdg_names_and_json_literals_work():
    t = Template("K", '{"browseraction": "Impression", "n": {{random.number({"min": 3, '
                      '"max": 4})}}, "e": "{{random.arrayElement(["p", "q"])}}", '
                      '"w": "{{random.weightedArrayElement({"data": ["a"], "weights": [1]})}}",'
                      ' "ua": "{{internet.userAgent}}", "fn": "{{name.firstName}}", '
                      '"ok": {{bool(p=1)}}, "now": "{{date.now}}"}')
    for r in render(t, 20):
        assert r["n"] in (3, 4) and r["e"] in ("p", "q") and r["w"] == "a", r
        assert r["ok"] is True and r["ua"] and r["fn"], r
        parse_event_time(r["now"])


def test_constant_template_is_fast_path_and_builtins_exist():
    for name in ("Click", "Impression", "DiscoveryKinesisTest"):
        t = BUILTIN_TEMPLATES[name]
        assert t.is_constant and t.browseraction == name, f"{name} must be constant"
    for name in ("ClickDetail", "ImpressionDetail"):
        assert not BUILTIN_TEMPLATES[name].is_constant, f"{name} shows placeholders"
    t = Template("C", '{"browseraction": "Click", "page": "/home", "n": 1}')
    assert t.is_constant and t.constant_record("s") == {
        "browseraction": "Click", "site": "s", "event_time": "", "page": "/home", "n": 1}
    assert Template("T", RICH).fields["u"] == "{{uuid}}", "fields show placeholders as text"


@pytest.mark.parametrize(("text", "words"), [
    ('{"browseraction": "Click",\n "x": {{nmber(1, 2)}}}',
     ["line 2", "column 7", "{{nmber(1, 2)}}", "unknown placeholder", "did you mean number"]),
    ('{"browseraction": "Click",\n\n "x": {{number(5, 1)}}}',
     ["line 3", "{{number(5, 1)}}", "min <= max"]),
    ('{"browseraction": "Click",\n "x": 1,}', ["line 2", "column 9", "not valid JSON"]),
    ('{"browseraction": "Click",\n "x": "{{uuid"}', ["line 2", "no closing }}"]),
    ('{"browseraction": "Scroll"}', ["browseraction", "'Scroll'", "Impression"]),
    ('{"x": 1}', ["no browseraction"]),
    ('[1, 2]', ["not a JSON object"]),
    ('{"browseraction": "Click",\n "site": "a"}', ["line 2", "'site'", "{{site}}"]),
    ('{"browseraction": "Click", "event_time": "{{timestamp}}"}', ["'event_time'"]),
    ('{"browseraction": "Click", {{uuid}}: 1}', ["key without quotes", "{{uuid}}"]),
    ('{"browseraction": "Click", "x": "{{choice(a)}}"}', ["not a literal", "{{choice(a)}}"]),
    ('{"browseraction": "Click", "x": "{{usr_agent}}"}', ["did you mean user_agent"]),
    ('{"browseraction": "Click", "x": "{{seed_instance}}"}', ["unknown placeholder"]),
    ('{"browseraction": "Click", "x": "{{weighted({"a": -1})}}"}', ["weights"]),
    ('{"browseraction": "Click", "x": "{{timestamp("%Q")}}"}', []),
    ('{"browseraction": "Click", "x": "{{pystr(min_chars=5000, max_chars=5000)}}"}',
     ["characters", str(MAX_RECORD_CHARS), "oversized"]),
])
def test_invalid_templates_point_at_the_problem(text, words):
    if '"%Q"' in text:  # an unknown strftime directive is passed through, not an error
        Template("Fine", text)
        return
    with pytest.raises(GeneratorError) as info:
        Template("Bad", text, source="mine.tmpl")
    msg = str(info.value)
    assert "mine.tmpl" in msg and "Fix:" in msg, f"message names the file and the fix: {msg}"
    for w in words:
        assert w in msg, f"message should mention {w!r}: {msg}"


def test_templates_file_round_trip_and_line_numbers(tmp_path):
    text = ("# my templates\n\n### Buy\n{\"browseraction\": \"Click\", \"p\": {{float(1, 9)}}}\n"
            "### Look\n{\"browseraction\": \"Impression\",\n \"u\": \"{{uuid}}\"}\n")
    path = tmp_path / "mine.tmpl"
    path.write_text(text)
    got = load_templates(path)
    assert list(got) == ["Buy", "Look"], f"names in file order: {list(got)}"
    again = parse_templates(templates_to_text(got.values()))
    assert [t.text.strip() for t in again.values()] == [t.text.strip() for t in got.values()]
    path.write_text(text.replace("{{uuid}}", "{{uuid(}}"))
    with pytest.raises(GeneratorError, match=r"mine.tmpl line 7, column 8") as info:
        load_templates(path)
    assert "{{uuid(}}" in str(info.value), f"names the placeholder: {info.value}"
    single = tmp_path / "solo.json"
    single.write_text('{"browseraction": "Click"}')
    assert list(load_templates(single)) == ["solo"], "a file without ### is one template"
    for bad, words in [("oops\n### A\n{}", "outside any template"),
                       ("### A\n{\"browseraction\": \"Click\"}\n### A\n{}", "twice"),
                       ("### A\n\n", "empty")]:
        with pytest.raises(GeneratorError, match=words):
            parse_templates(bad, source="f")
    with pytest.raises(GeneratorError, match="Cannot read"):
        load_templates(tmp_path / "missing.tmpl")


def test_resolve_and_preview():
    assert resolve("Click") is BUILTIN_TEMPLATES["Click"]
    mine = {"Mine": Template("Mine", '{"browseraction": "Click", "x": {{number(1, 1)}}}')}
    assert resolve("Mine", mine) is mine["Mine"]
    with pytest.raises(GeneratorError, match="did you mean Click"):
        resolve("Clik")
    recs = preview(["Impression", "Mine"], n=2, start=START, library=mine)
    assert [(r["browseraction"], r.get("x")) for r in recs] == [
        ("Impression", None), ("Impression", None), ("Click", 1), ("Click", 1)], recs
    assert [r["event_time"] for r in recs[:2]] == ["2026-01-01T12:00:00.000Z",
                                                   "2026-01-01T12:00:01.000Z"], recs
    assert len(preview(mine, n=3)) == 3, "a dict of templates previews each"
