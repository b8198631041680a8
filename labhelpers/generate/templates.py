"""Record templates: JSON with ``{{ placeholders }}`` for random values, rendered fast.

A template is the JSON of one record with placeholders, KDG-style::

    {"browseraction": "Click",
     "user": "{{uuid}}", "ip": "{{ipv4}}", "agent": "{{user_agent}}",
     "page": "/product/{{number(1, 500)}}", "price": {{float(1, 200, 2)}},
     "device": "{{weighted({'mobile': 6, 'desktop': 3, 'tablet': 1})}}",
     "client_time": "{{timestamp}}"}

- ``browseraction`` is required and is a literal: ``Click``, ``Impression`` or
  ``DiscoveryKinesisTest`` (one template per action; give each its own rate).
- ``site`` and ``event_time`` are set by the generator on every record (``contracts.py``);
  a template may not set them, but may use ``{{site}}`` and ``{{timestamp}}`` in other fields.
- A placeholder inside quotes becomes part of that string; a bare placeholder becomes a JSON
  value of its own type (``{{number(1, 9)}}`` is a number, ``"{{number(1, 9)}}"`` a string).

Placeholders (``{{uuid}}``, ``{{number(1, 9)}}``, ``{{timestamp}}``, any Faker provider,
the Kinesis Data Generator's names) are listed in ``labhelpers.generate.placeholders``.

A templates file holds one or more templates, each after a line ``### Name``::

    ### ClickDetail
    {"browseraction": "Click", "user": "{{uuid}}"}

(a file without such a line is one template named after the file). ``load_templates`` reads it;
errors give the file, line, column and placeholder.
"""

from __future__ import annotations

import ast
import difflib
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any

from ..errors import GeneratorError
from ..job.contracts import (
    ACTIONS,
    CLICK,
    DISCOVERY,
    IMPRESSION,
    MAX_RECORD_CHARS,
    format_event_time,
)
from .placeholders import (
    _SITE,
    HELPERS,
    RenderContext,
    SlotFn,
    _ArgError,
    _is_int,
    _maker,
    _timestamp,
    sample_context,
)

RESERVED_FIELDS = ("site", "event_time")
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.+-]{0,63}$")
# Private-use characters mark placeholders while the template is parsed as JSON.
_S_OPEN, _S_CLOSE, _B_OPEN, _B_CLOSE = "\ue000", "\ue001", "\ue002", "\ue003"
_MARK_RE = re.compile(r'"\ue002(\d+)\ue003"|\ue000(\d+|T)\ue001')
_HEADER_RE = re.compile(r"^###\s*(.*?)\s*$")

# (ms, ts) -> line: renders one record of a template (``Template.bind``).
Renderer = Callable[[int, str], str]


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spot:
    start: int  # offsets in the template text
    end: int
    expr: str
    in_string: bool
    name: str = ""
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()


_JSON_NAMES = {"true": True, "false": False, "null": None}


def _literal(node: ast.AST) -> Any:
    # ast.literal_eval, plus JSON's true/false/null (KDG templates use JSON arguments)
    if isinstance(node, ast.Name) and node.id in _JSON_NAMES:
        return _JSON_NAMES[node.id]
    if isinstance(node, ast.List):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_literal(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise ValueError("** in a dict")
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values, strict=True)}
    return ast.literal_eval(node)


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return None if head is None else f"{head}.{node.attr}"
    return None


def _parse_expr(expr: str) -> tuple[str, tuple[Any, ...], tuple[tuple[str, Any], ...]]:
    try:
        tree = ast.parse(expr.strip(), mode="eval").body
    except SyntaxError:
        raise _ArgError("is not a name or a call like number(1, 10)") from None
    if isinstance(tree, ast.Call):
        name = _dotted(tree.func)
        try:
            args = tuple(_literal(a) for a in tree.args)
            kwargs = tuple((k.arg or "", _literal(k.value)) for k in tree.keywords)
        except (ValueError, TypeError, SyntaxError):
            raise _ArgError("has an argument that is not a literal (numbers, strings, "
                            "lists, dicts)") from None
        if any(not k for k, _ in kwargs):
            raise _ArgError("uses ** arguments")
    else:
        name, args, kwargs = _dotted(tree), (), ()
    if name is None:
        raise _ArgError("is not a name or a call like number(1, 10)")
    return name, args, kwargs


def _line_col(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


def _scan(text: str, fail: Callable[[int, str, str], GeneratorError]) -> list[_Spot]:
    """Find the placeholders, and whether each is inside a JSON string."""
    spots: list[_Spot] = []
    i, n, in_str = 0, len(text), False
    while i < n:
        if text.startswith("{{", i):
            end = text.find("}}", i + 2)
            newline = text.find("\n", i + 2)
            if end < 0 or 0 <= newline < end:
                raise fail(i, text[i:i + 30].split("\n")[0], "has no closing }}")
            spots.append(_Spot(i, end + 2, text[i + 2:end], in_str))
            i = end + 2
            continue
        c = text[i]
        if in_str:
            if c == "\\":
                i += 2
                continue
            if c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        i += 1
    return spots


# ---------------------------------------------------------------------------------------------
# Template
# ---------------------------------------------------------------------------------------------


def _encode_value(v: Any) -> str:
    if isinstance(v, str):
        return encode_basestring(v)
    if v is True:
        return "true"
    if v is False:
        return "false"
    if _is_int(v):
        return str(v)
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _encode_in_string(v: Any) -> str:
    if isinstance(v, bool):
        v = "true" if v else "false"
    return encode_basestring(v if isinstance(v, str) else str(v))[1:-1]


@dataclass(frozen=True)
class Template:
    """One record template (see the module docstring for the syntax).

    name: what senders, rates and spikes call it (letters, digits, ``_.+-``).
    text: the JSON with placeholders.
    source, first_line: where the text comes from, for error messages.
    Invalid text raises GeneratorError at construction, naming the line and placeholder.
    """

    name: str
    text: str
    source: str = "<template>"
    first_line: int = 1
    _obj: Any = field(init=False, repr=False, compare=False)
    _spots: tuple[_Spot, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME_RE.match(self.name):
            raise GeneratorError(f"Template name {self.name!r} ({self.source}) is not valid",
                                 "use 1-64 letters, digits or _.+- starting with a letter.")
        marks = (_S_OPEN, _S_CLOSE, _B_OPEN, _B_CLOSE)
        if not isinstance(self.text, str) or any(c in self.text for c in marks):
            raise GeneratorError(f"Template {self.name!r} ({self.source}) is not text or holds "
                                 "private-use characters U+E000-U+E003",
                                 "write the template as plain JSON text.")
        obj, spots = self._compile()
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_spots", spots)
        self._check_sample()

    # ---- messages ----
    def _where(self, pos: int, snippet: str | None = None) -> str:
        line, col = _line_col(self.text, pos)
        where = f"{self.source} line {line + self.first_line - 1}, column {col}"
        return where + (f", placeholder {{{{{snippet}}}}}" if snippet is not None else "")

    def _fail(self, pos: int, what: str, fix: str, snippet: str | None = None) -> GeneratorError:
        return GeneratorError(f"Template {self.name!r} ({self._where(pos, snippet)}) {what}", fix)

    # ---- compile ----
    def _compile(self) -> tuple[Any, tuple[_Spot, ...]]:
        text = self.text
        spots = _scan(text, lambda pos, snip, what: self._fail(
            pos, f"{what}: {snip!r}", "close every placeholder on its own line, as {{uuid}}."))
        parsed: list[_Spot] = []
        pieces: list[str] = []
        shifts: list[tuple[int, int]] = []  # (position in substituted text, orig - new)
        last = 0
        new_len = 0
        for k, sp in enumerate(spots):
            try:
                name, args, kwargs = _parse_expr(sp.expr)
            except _ArgError as err:
                raise self._fail(sp.start, str(err), "write e.g. {{number(1, 10)}} or {{uuid}}; "
                                 "see labhelpers/generate/placeholders.py for the "
                                 "list.", sp.expr) from None
            self._check_call(sp, name, args, kwargs)
            parsed.append(_Spot(sp.start, sp.end, sp.expr, sp.in_string, name, args, kwargs))
            pieces.append(text[last:sp.start])
            new_len += sp.start - last
            mark = f"{_S_OPEN}{k}{_S_CLOSE}" if sp.in_string else f'"{_B_OPEN}{k}{_B_CLOSE}"'
            pieces.append(mark)
            new_len += len(mark)
            shifts.append((new_len, sp.end - new_len))
            last = sp.end
        pieces.append(text[last:])
        sub = "".join(pieces)
        try:
            obj = json.loads(sub)
        except json.JSONDecodeError as err:
            shift = 0
            for at, delta in shifts:
                if at <= err.pos:
                    shift = delta
            raise self._fail(min(err.pos + shift, len(text)), f"is not valid JSON: {err.msg}",
                             "fix the JSON at that position (placeholders outside quotes "
                             "stand for a whole value).") from None
        if not isinstance(obj, dict):
            raise self._fail(0, "is not a JSON object", 'write it as {"browseraction": '
                             '"Click", ...}.')
        self._check_fields(obj, parsed)
        return obj, tuple(parsed)

    def _check_call(self, sp: _Spot, name: str, args: tuple[Any, ...],
                    kwargs: tuple[tuple[str, Any], ...]) -> None:
        if name == _SITE and not args and not kwargs:
            return
        maker = _maker(name)
        known = sorted(k for k in HELPERS if "." not in k) + ["site", "<any Faker provider>"]
        if maker is None:
            raise self._fail(sp.start, f"uses unknown function {name!r}",
                             f"use one of {', '.join(known)}.", sp.expr)
        try:
            fn = maker(sample_context(), *args, **dict(kwargs))
            fn(0, "1970-01-01T00:00:00.000Z")
        except _ArgError as err:
            what, hint = f"{name} {err}", ""
            if "Faker has no provider" in str(err):
                what = f"uses unknown placeholder {name!r}"
                close = difflib.get_close_matches(name, list(HELPERS) + ["site", "user_agent"],
                                                  n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
            raise self._fail(sp.start, what, f"use one of {', '.join(known)}{hint}.",
                             sp.expr) from None
        except (TypeError, ValueError) as err:
            raise self._fail(sp.start, f"{name} got wrong arguments: {err}",
                             "see labhelpers/generate/placeholders.py for each placeholder's "
                             "arguments.", sp.expr) from None

    def _key_pos(self, key: str) -> int:
        m = re.search(r'"' + re.escape(key) + r'"\s*:', self.text)
        return m.start() if m else 0

    def _check_fields(self, obj: dict[str, Any], spots: list[_Spot]) -> None:
        action = obj.get("browseraction")
        if action is None:
            raise self._fail(0, "has no browseraction field",
                             f'add "browseraction": one of {", ".join(ACTIONS)}.')
        if action not in ACTIONS:
            shown = "a placeholder" if isinstance(action, str) and (
                _S_OPEN in action or _B_OPEN in action) else repr(action)
            raise self._fail(self._key_pos("browseraction"), f"sets browseraction to {shown}",
                             f"use a literal {', '.join(ACTIONS)} (one template per action, "
                             "each with its own rate).")
        for key in RESERVED_FIELDS:
            if key in obj:
                raise self._fail(self._key_pos(key), f"sets {key!r}, which the generator sets "
                                 "on every record", "remove it; use {{site}} or "
                                 "{{timestamp}} in another field if you need the value.")

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                for k, v in node.items():
                    if _B_OPEN in k:
                        sp = spots[int(k[1:-1])]
                        raise self._fail(sp.start, "is a key without quotes",
                                         'put it in quotes: "{{...}}": value.', sp.expr)
                    walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)

        walk(obj)

    def _check_sample(self) -> None:
        if self.is_constant:
            return
        render = self.bind("x" * 16, sample_context())
        sizes = [len(render(0, "1970-01-01T00:00:00.000Z")) for _ in range(20)]
        if max(sizes) > MAX_RECORD_CHARS:
            raise self._fail(0, f"renders records of up to {max(sizes)} characters",
                             f"keep records under {MAX_RECORD_CHARS} characters: the analytics "
                             "job sets larger ones aside as oversized.")

    # ---- use ----
    @property
    def browseraction(self) -> str:
        """The action every record of this template carries."""
        return self._obj["browseraction"]

    @property
    def placeholders(self) -> tuple[str, ...]:
        """The placeholder expressions, in order of appearance."""
        return tuple(s.expr.strip() for s in self._spots)

    @property
    def is_constant(self) -> bool:
        """True when the template has no placeholders (every record is the same but for
        site and event time): the generator's fastest path."""
        return not self._spots

    @property
    def fields(self) -> dict[str, Any]:
        """The template's fields other than browseraction (placeholders shown as text)."""
        out = {}
        for k, v in self._obj.items():
            if k != "browseraction":
                out[k] = self._show(v)
        return out

    def _show(self, v: Any) -> Any:
        if isinstance(v, str):
            def sub(m: re.Match[str]) -> str:
                return "{{" + self._spots[int(m.group(1))].expr.strip() + "}}"
            return re.sub("[\ue000\ue002](\\d+)[\ue001\ue003]", sub, v)
        if isinstance(v, dict):
            return {self._show(k): self._show(x) for k, x in v.items()}
        if isinstance(v, list):
            return [self._show(x) for x in v]
        return v

    def constant_record(self, site: str, extra: Mapping[str, Any] | None = None
                        ) -> dict[str, Any]:
        """For a constant template: the record with ``event_time`` empty (field order of the
        contract: browseraction, site, event_time, then the template's fields)."""
        if not self.is_constant:
            raise GeneratorError(f"Template {self.name!r} has placeholders",
                                 "use bind() to render it.")
        rec = {"browseraction": self.browseraction, "site": site, "event_time": ""}
        rec.update((k, v) for k, v in self._obj.items() if k != "browseraction")
        rec.update(extra or {})
        return rec

    def bind(self, site: str, ctx: RenderContext,
             extra: Mapping[str, Any] | None = None) -> Renderer:
        """A function ``(ms, ts) -> line`` rendering this template's records for ``site``.

        ``ms`` is the event time in epoch ms and ``ts`` the same as wire text; ``extra`` are
        constant fields added after the template's. Random values come from ``ctx``.
        """
        rec: dict[str, Any] = {"browseraction": self.browseraction, "site": site,
                               "event_time": f"{_S_OPEN}T{_S_CLOSE}"}
        rec.update((k, v) for k, v in self._obj.items() if k != "browseraction")
        rec.update(extra or {})
        line = json.dumps(rec, separators=(",", ":"), ensure_ascii=False)
        lits: list[str] = []
        fns: list[SlotFn] = []
        encs: list[Callable[[Any], str]] = []
        last = 0
        for m in _MARK_RE.finditer(line):
            lits.append(line[last:m.start()])
            last = m.end()
            if m.group(2) == "T":
                fns.append(_timestamp(ctx))
                encs.append(_encode_in_string)
                continue
            sp = self._spots[int(m.group(1) or m.group(2))]
            if sp.name == _SITE and not sp.args and not sp.kwargs:
                fn: SlotFn = (lambda s: lambda ms, ts: s)(site)
            else:
                maker = _maker(sp.name)
                assert maker is not None  # checked at compile time
                fn = maker(ctx, *sp.args, **dict(sp.kwargs))
            fns.append(fn)
            encs.append(_encode_value if m.group(1) is not None else _encode_in_string)
        lits.append(line[last:])
        return _make_renderer(lits, fns, encs)

    def preview(self, n: int = 3, site: str = "example.com", seed: int | None = 0,
                start: datetime | float | None = None, interval_s: float = 1.0
                ) -> list[dict[str, Any]]:
        """``n`` rendered records (one per ``interval_s`` from ``start``, default now)."""
        return preview([self], n=n, site=site, seed=seed, start=start, interval_s=interval_s)


def _make_renderer(lits: list[str], fns: list[SlotFn],
                   encs: list[Callable[[Any], str]]) -> Renderer:
    if len(fns) == 1:  # only the event time: no random values
        a, b = lits

        def render1(ms: int, ts: str) -> str:
            return a + ts + b

        return render1
    pairs = list(zip(fns, encs, lits[1:], strict=True))
    first = lits[0]

    def render(ms: int, ts: str) -> str:
        out = [first]
        for fn, enc, lit in pairs:
            out.append(enc(fn(ms, ts)))
            out.append(lit)
        return "".join(out)

    return render


# ---------------------------------------------------------------------------------------------
# Built-ins, files, lookup, preview
# ---------------------------------------------------------------------------------------------


def _builtin(name: str, text: str) -> Template:
    return Template(name, text, source=f"built-in template {name}")


# The lab's three payloads (constant: the generator's fastest path), and detailed variants of
# Click and Impression that show what placeholders do; the job reads only the contract fields.
_DETAIL = ('"user_id": "{{uuid}}", "seq": {{seq}}, "ip": "{{ipv4}}", '
           '"user_agent": "{{user_agent}}", "page": "/product/{{number(1, 500)}}", '
           '"device": "{{weighted({\'mobile\': 6, \'desktop\': 3, \'tablet\': 1})}}", '
           '"country": "{{country_code}}"')
BUILTIN_TEMPLATES: dict[str, Template] = {
    IMPRESSION: _builtin(IMPRESSION, json.dumps({"browseraction": IMPRESSION})),
    CLICK: _builtin(CLICK, json.dumps({"browseraction": CLICK})),
    DISCOVERY: _builtin(DISCOVERY, json.dumps({"browseraction": DISCOVERY})),
    "ImpressionDetail": _builtin("ImpressionDetail",
                                 '{"browseraction": "Impression", ' + _DETAIL + "}"),
    "ClickDetail": _builtin("ClickDetail", '{"browseraction": "Click", ' + _DETAIL
                            + ', "price": {{float(1, 200, 2)}}}'),
}


def resolve(template: str | Template,
            library: Mapping[str, Template] | None = None) -> Template:
    """A Template from itself or its name (``library`` first, then the built-ins)."""
    if isinstance(template, Template):
        return template
    if isinstance(template, str):
        if library and template in library:
            return library[template]
        if template in BUILTIN_TEMPLATES:
            return BUILTIN_TEMPLATES[template]
    names = sorted(set(BUILTIN_TEMPLATES) | set(library or {}))
    close = difflib.get_close_matches(str(template), names, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise GeneratorError(f"Unknown template {template!r} (parameter payload)",
                         f"use one of {', '.join(names)}{hint}, or load yours with "
                         "load_templates(path).")


def parse_templates(text: str, source: str = "<text>",
                    default_name: str | None = None) -> dict[str, Template]:
    """Templates from the text of a templates file (see the module docstring)."""
    lines = text.splitlines(keepends=True)
    headers = [(i, _HEADER_RE.match(ln)) for i, ln in enumerate(lines)]
    headers = [(i, m) for i, m in headers if m]
    if not headers:
        if not text.strip():
            raise GeneratorError(f"{source} holds no template",
                                 'write one, e.g. ### MyClick then {"browseraction": "Click"}.')
        name = default_name or "template"
        return {name: Template(name, text, source=source)}
    for i in range(headers[0][0]):
        if lines[i].strip() and not lines[i].lstrip().startswith("#"):
            raise GeneratorError(f"{source} line {i + 1} is outside any template",
                                 "start each template with a line ### Name (lines before the "
                                 "first may only be blank or # comments).")
    out: dict[str, Template] = {}
    for k, (i, m) in enumerate(headers):
        end = headers[k + 1][0] if k + 1 < len(headers) else len(lines)
        name = m.group(1)
        if name in out:
            raise GeneratorError(f"{source} line {i + 1} defines template {name!r} twice",
                                 "give each template its own name.")
        body = "".join(lines[i + 1:end])
        if not body.strip():
            raise GeneratorError(f"{source} line {i + 1}: template {name!r} is empty",
                                 'put its JSON on the lines after ### Name.')
        out[name] = Template(name, body, source=source, first_line=i + 2)
    return out


def load_templates(path: Path | str) -> dict[str, Template]:
    """Read a templates file: name -> Template (errors name the file, line and placeholder)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise GeneratorError(f"Cannot read templates file {p}: {err.strerror}",
                             "check the path (relative paths start in the notebook's "
                             "folder).") from None
    return parse_templates(text, source=str(p), default_name=p.stem)


def templates_to_text(templates: Iterable[Template]) -> str:
    """The text of a templates file holding ``templates`` (``parse_templates`` reads it)."""
    return "".join(f"### {t.name}\n{t.text.rstrip()}\n" for t in templates)


def preview(templates: Sequence[str | Template] | Mapping[str, Template] | str | Template,
            n: int = 3, site: str = "example.com", seed: int | None = 0,
            start: datetime | float | None = None, interval_s: float = 1.0,
            library: Mapping[str, Template] | None = None) -> list[dict[str, Any]]:
    """``n`` rendered records of each template (by name or object), to look at before sending.

    Records carry ``site`` and ``event_time`` as the generator sends them; event times are
    ``interval_s`` apart from ``start`` (default: now).
    """
    if isinstance(templates, str | Template):
        templates = [templates]
    elif isinstance(templates, Mapping):
        library = {**(library or {}), **templates}
        templates = list(templates.values())
    if not isinstance(n, int) or n < 1:
        raise GeneratorError(f"Parameter n must be a whole number >= 1, got {n!r}", "use n=3.")
    start_s = time.time() if start is None else (
        start.timestamp() if isinstance(start, datetime) else float(start))
    ctx: RenderContext | None = None
    out: list[dict[str, Any]] = []
    for item in templates:
        t = resolve(item, library)
        if t.is_constant:
            render: Renderer = (lambda rec: lambda ms, ts: json.dumps(
                {**rec, "event_time": ts}, ensure_ascii=False))(t.constant_record(site))
        else:
            ctx = ctx or RenderContext(seed)
            render = t.bind(site, ctx)
        for i in range(n):
            ms = round((start_s + i * interval_s) * 1000)
            out.append(json.loads(render(ms, format_event_time(ms / 1000))))
    return out
