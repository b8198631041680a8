"""The architecture diagram: valid SVG, the right boxes highlighted per step, both backends."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

from labhelpers.errors import ConfigError
from labhelpers.monitor import architecture
from labhelpers.run.headless import lab_notebooks

NS = {"svg": "http://www.w3.org/2000/svg"}


def box_states(svg_text: str) -> dict[str, str]:
    """Each box's key -> "on" (this step), "off" or "remove"; the bar as key "bar"."""
    root = ET.fromstring(svg_text)
    return {g.get("id").removeprefix("box-"): g.get("class")
            for g in root.findall("svg:g", NS) if g.get("id")}


def box_titles(svg_text: str) -> dict[str, str]:
    root = ET.fromstring(svg_text)
    return {g.get("id").removeprefix("box-"): g.find("svg:text", NS).text
            for g in root.findall("svg:g", NS) if (g.get("id") or "").startswith("box-")}


def lit(svg_text: str) -> set[str]:
    return {k for k, v in box_states(svg_text).items() if v != "off"}


@pytest.mark.parametrize("backend", ["local", "aws"])
@pytest.mark.parametrize("step", sorted(architecture.STEPS))
def test_every_step_is_valid_svg(step, backend):
    text = architecture.svg(step, backend)
    root = ET.fromstring(text)  # well-formed XML
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert f"notebook {step}" in text, "the caption names the notebook"
    assert set(box_states(text)) == {*architecture.BOX_KEYS, "bar"}, box_states(text)


def test_step_03_highlights_the_app_and_its_outputs_only():
    text = architecture.svg("03")
    assert lit(text) == {"app", "scores", "dead", "monitor"}, lit(text)
    titles = box_titles(text)
    assert titles["app"] == "Analytics app" and titles["generator"] == "Generator"
    root = ET.fromstring(text)
    app_rect = root.find("svg:g[@id='box-app']/svg:rect", NS)
    assert app_rect.get("stroke") == architecture.HIGHLIGHT["stroke"]


def test_setup_highlights_the_emulator_bar():
    assert lit(architecture.svg("00")) == {"bar"}


def test_deploy_highlights_everything_the_stack_makes():
    in_stack = {b.key for b in architecture.BOXES if b.in_stack}
    assert lit(architecture.svg("01")) == in_stack | {"bar"}
    assert "app" not in in_stack and "generator" not in in_stack


def test_cleanup_marks_everything_for_removal():
    states = box_states(architecture.svg("05"))
    assert {v for k, v in states.items() if k != "bar"} == {"remove"}, states


def test_evaluate_relabels_its_boxes_and_dims_the_rest():
    text = architecture.svg("06")
    assert "Scenario suite" in text and "replay" in text
    assert 'opacity="0.35"' in text, "unused parts are dimmed"


def test_aws_backend_names_the_services():
    aws, local = architecture.svg("03", "aws"), architecture.svg("03", "local")
    for service in ("AWS Lambda", "Kinesis Data Stream", "Managed Flink", "Amazon SNS",
                    "Firehose"):
        assert service in aws, service
    assert "AWS Lambda" not in local and "alert_handler.py" in local


@pytest.mark.parametrize("step", ["03", 3, "03_analytics_app", "analytics", " Analytics "])
def test_step_names(step):
    assert architecture.resolve_step(step).notebook == "03"


@pytest.mark.parametrize("step", ["07", "xx", 9, ""])
def test_unknown_step_lists_the_valid_ones(step):
    with pytest.raises(ConfigError, match="00 \\(setup\\).*06 \\(evaluate\\)"):
        architecture.show(step)


def test_unknown_backend():
    with pytest.raises(ConfigError, match="local, aws"):
        architecture.svg("00", backend="gcp")


def test_diagram_shows_as_svg_and_as_text(tmp_path):
    d = architecture.show(step="04")
    assert d._repr_svg_() == architecture.svg("04")
    text = repr(d)
    assert "[alert function]" in text and "[sns topic]" in text and "analytics app ->" in text
    path = d.save(tmp_path / "arch.svg")
    assert path.read_text().startswith("<svg")


def test_notebooks_show_their_own_step():
    """Each notebook that draws the diagram asks for its own step (the number in its name)."""
    drawn = set()
    for book in lab_notebooks():
        cells = json.loads(book.read_text())["cells"]
        src = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        for step in re.findall(r'architecture\.show\(step="(\d\d)"', src):
            assert step == book.name[:2], f"{book.name} shows step {step}"
            drawn.add(step)
    assert {"00", "01", "02", "03", "05", "06"} <= drawn, drawn
