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

Placeholders (arguments are Python or JSON literals):

=============================  ==============================================================
``number(min, max)``           whole number in [min, max]; ``number(max)`` is [0, max]
``float(min, max, digits)``    decimal number in [min, max] with ``digits`` decimals
``choice(a, b, ...)``          one of the values (or ``choice([a, b, ...])``)
``weighted({a: 3, b: 1})``     one of the keys, in proportion to the weights
                               (or ``weighted([a, b], [3, 1])``)
``bool(p)``                    true with probability ``p`` (default 0.5)
``uuid``                       a random UUID (version 4)
``ipv4``, ``user_agent``,      realistic values from Faker; any Faker provider works, as
``name``, ``email``, ...       ``{{city}}`` or ``{{faker.date_of_birth(minimum_age=18)}}``
``timestamp(format)``          the record's event time (simulated or live): ISO-8601 as the
                               contract's ``event_time`` by default, or ``"epoch_ms"``,
                               ``"epoch"``, or a ``strftime`` format
``now(format)``                the wall-clock time when the record is rendered (same formats)
``site``                       the record's site
``seq(start)``                 a running number per template and site
=============================  ==============================================================

The Kinesis Data Generator's names work too (``random.number``, ``random.arrayElement``,
``random.weightedArrayElement``, ``random.uuid``, ``random.boolean``, ``internet.ip``,
``internet.userAgent``, ``name.firstName``, ``name.lastName``, ``date.now``), so an old KDG
template needs no rewrite.

Values come from one seeded Faker instance per run (deterministic for a seed). Faker's richer
providers are slow (50-130 us for a name or a user agent), so by default each such
placeholder draws its first ``pool_size`` values from Faker and then reuses them at random:
clickstreams repeat users, and the generator keeps its rate.

A templates file holds one or more templates, each after a line ``### Name``::

    ### ClickDetail
    {"browseraction": "Click", "user": "{{uuid}}"}

(a file without such a line is one template named after the file). ``load_templates`` reads it;
errors give the file, line, column and placeholder.
"""

from __future__ import annotations

import ast
import bisect
import difflib
import json
import re
import time
import uuid as uuidlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any

from ..contracts import (
    ACTIONS,
    CLICK,
    DISCOVERY,
    IMPRESSION,
    MAX_RECORD_CHARS,
    format_event_time,
)
from ..errors import GeneratorError

RESERVED_FIELDS = ("site", "event_time")
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.+-]{0,63}$")
DEFAULT_POOL_SIZE = 1000
# Private-use characters mark placeholders while the template is parsed as JSON.
_S_OPEN, _S_CLOSE, _B_OPEN, _B_CLOSE = "\ue000", "\ue001", "\ue002", "\ue003"
_MARK_RE = re.compile(r'"\ue002(\d+)\ue003"|\ue000(\d+|T)\ue001')
_HEADER_RE = re.compile(r"^###\s*(.*?)\s*$")

# (ms, ts) -> value: ms is the record's event time in epoch ms, ts the same as wire text.
SlotFn = Callable[[int, str], Any]
Renderer = Callable[[int, str], str]


# ---------------------------------------------------------------------------------------------
# The render context: one seeded Faker per run
# ---------------------------------------------------------------------------------------------


class RenderContext:
    """Random source shared by every template of one run: a seeded Faker instance.

    seed: the same seed renders the same values in the same order (None: 0).
    pool_size: how many fresh values each Faker provider placeholder draws before reusing
    them (0: always fresh; slow providers then cost 50-130 us per record).
    """

    def __init__(self, seed: int | None = 0, pool_size: int = DEFAULT_POOL_SIZE) -> None:
        from faker import Faker  # imported here: only templates with placeholders need it

        if not isinstance(pool_size, int) or pool_size < 0:
            raise GeneratorError(f"Parameter pool_size must be a whole number >= 0, got "
                                 f"{pool_size!r}", f"use pool_size={DEFAULT_POOL_SIZE}.")
        proxy = Faker("en_US")
        proxy.seed_instance(0 if seed is None else seed)
        # The proxy dispatches every call through __getattr__; its one generator is 5x faster.
        self.faker = proxy._factories[0]
        self.random = self.faker.random
        self.pool_size = pool_size
        # one pool per provider and arguments, shared by every template and site of the run,
        # so that filling pools costs pool_size Faker calls once, not once per stream
        self.pools: dict[tuple[str, str], list[Any]] = {}


# ---------------------------------------------------------------------------------------------
# Placeholder functions
# ---------------------------------------------------------------------------------------------


class _ArgError(Exception):
    """Bad arguments to a placeholder (turned into a GeneratorError with the position)."""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _number(ctx: RenderContext, *args: Any, **kw: Any) -> SlotFn:
    if len(args) == 1 and not kw:
        lo, hi = 0, args[0]
    else:
        names = ("min", "max")
        vals = dict(zip(names, args, strict=False)) | kw
        if set(vals) - set(names) or len(args) > 2:
            raise _ArgError("takes number(max) or number(min, max)")
        lo, hi = vals.get("min", 0), vals.get("max", 100)
    if not (_is_int(lo) and _is_int(hi)) or lo > hi:
        raise _ArgError(f"needs whole numbers min <= max, got {lo!r}, {hi!r}")
    randint = ctx.random.randint
    return lambda ms, ts: randint(lo, hi)


def _float(ctx: RenderContext, min: Any = 0.0, max: Any = 1.0, digits: Any = 2) -> SlotFn:  # noqa: A002
    if not (_is_num(min) and _is_num(max)) or min > max:
        raise _ArgError(f"needs numbers min <= max, got {min!r}, {max!r}")
    if not _is_int(digits) or not 0 <= digits <= 15:
        raise _ArgError(f"digits must be a whole number 0-15, got {digits!r}")
    uniform = ctx.random.uniform
    return lambda ms, ts: round(uniform(min, max), digits)


def _items(args: tuple[Any, ...]) -> list[Any]:
    items = list(args[0]) if len(args) == 1 and isinstance(args[0], list | tuple) else list(args)
    if not items:
        raise _ArgError("needs at least one value")
    return items


def _choice(ctx: RenderContext, *args: Any) -> SlotFn:
    items = _items(args)
    choice = ctx.random.choice
    return lambda ms, ts: choice(items)


def _weighted(ctx: RenderContext, *args: Any) -> SlotFn:
    if len(args) == 1 and isinstance(args[0], dict):
        items, weights = list(args[0]), list(args[0].values())
    elif len(args) == 2 and isinstance(args[0], list | tuple) and isinstance(args[1], list | tuple):
        items, weights = list(args[0]), list(args[1])
    else:
        raise _ArgError("takes weighted({value: weight, ...}) or weighted([values], [weights])")
    if not items or len(items) != len(weights):
        raise _ArgError(f"needs as many weights as values, got {len(items)} and {len(weights)}")
    if not all(_is_num(w) and w >= 0 for w in weights) or sum(weights) <= 0:
        raise _ArgError(f"weights must be numbers >= 0 with a positive sum, got {weights!r}")
    cum: list[float] = []
    total = 0.0
    for w in weights:
        total += w
        cum.append(total)
    rnd, pick = ctx.random.random, bisect.bisect_right
    last = len(items) - 1
    return lambda ms, ts: items[min(pick(cum, rnd() * total), last)]


def _bool(ctx: RenderContext, p: Any = 0.5) -> SlotFn:
    if not _is_num(p) or not 0 <= p <= 1:
        raise _ArgError(f"p must be a probability between 0 and 1, got {p!r}")
    rnd = ctx.random.random
    return lambda ms, ts: rnd() < p


def _uuid(ctx: RenderContext) -> SlotFn:
    getrandbits = ctx.random.getrandbits  # what Faker's uuid4 does, without its dispatch
    return lambda ms, ts: str(uuidlib.UUID(int=getrandbits(128), version=4))


def _time_format(fmt: Any) -> Callable[[int], Any] | None:
    if fmt is None:
        return None
    if fmt == "epoch_ms":
        return lambda ms: ms
    if fmt == "epoch":
        return lambda ms: ms // 1000
    if isinstance(fmt, str) and "%" in fmt:
        datetime(2026, 1, 1).strftime(fmt)  # a bad format fails here, at compile time
        return lambda ms: datetime.fromtimestamp(ms / 1000, tz=UTC).strftime(fmt)
    raise _ArgError(f'format must be "epoch_ms", "epoch" or a strftime format, got {fmt!r}')


def _timestamp(ctx: RenderContext, format: Any = None) -> SlotFn:  # noqa: A002
    conv = _time_format(format)
    if conv is None:
        return lambda ms, ts: ts
    return lambda ms, ts: conv(ms)


def _now(ctx: RenderContext, format: Any = None) -> SlotFn:  # noqa: A002
    conv = _time_format(format)
    if conv is None:
        return lambda ms, ts: format_event_time(time.time())
    return lambda ms, ts: conv(time.time_ns() // 1_000_000)


def _seq(ctx: RenderContext, start: Any = 1) -> SlotFn:
    if not _is_int(start):
        raise _ArgError(f"start must be a whole number, got {start!r}")
    counter = [start - 1]

    def nxt(ms: int, ts: str) -> int:
        counter[0] += 1
        return counter[0]

    return nxt


def _faker(provider: str) -> Callable[..., SlotFn]:
    """A Faker provider as a placeholder, pooled (see RenderContext.pool_size)."""

    def make(ctx: RenderContext, *args: Any, **kw: Any) -> SlotFn:
        # Providers are the generator's instance attributes; its own methods (seed, format,
        # parse, ...) are not placeholders.
        fn = vars(ctx.faker).get(provider)
        if not callable(fn) or provider.startswith("_"):
            raise _ArgError(f"Faker has no provider {provider!r}")
        try:
            first = fn(*args, **kw)
        except (TypeError, ValueError, AttributeError) as err:
            raise _ArgError(f"Faker's {provider} refused these arguments: {err}") from None
        conv = _json_safe(first)

        def call() -> Any:
            return conv(fn(*args, **kw))

        pool = ctx.pools.setdefault((provider, repr((args, sorted(kw.items())))), [])
        size = ctx.pool_size
        choice = ctx.random.choice

        def draw(ms: int, ts: str) -> Any:
            if len(pool) < size:
                value = call()
                pool.append(value)
                return value
            return choice(pool) if size else call()

        return draw

    return make


def _json_safe(sample: Any) -> Callable[[Any], Any]:
    # Faker returns datetimes, dates, Decimals, ...: JSON gets them as text.
    if isinstance(sample, datetime):
        return format_event_time
    if sample is None or isinstance(sample, str | int | float | bool | list | dict):
        return lambda v: v
    return str


def _kdg_number(ctx: RenderContext, arg: Any = 100) -> SlotFn:
    if isinstance(arg, dict):
        return _number(ctx, arg.get("min", 0), arg.get("max", 99999))
    return _number(ctx, arg)


def _kdg_weighted(ctx: RenderContext, arg: Any = None) -> SlotFn:
    if not isinstance(arg, dict) or "data" not in arg or "weights" not in arg:
        raise _ArgError('takes {"data": [values], "weights": [weights]}')
    return _weighted(ctx, arg["data"], arg["weights"])


# Placeholders with their own (fast, seeded) implementation; anything else is a Faker provider.
HELPERS: dict[str, Callable[..., SlotFn]] = {
    "number": _number,
    "float": _float,
    "choice": _choice,
    "weighted": _weighted,
    "bool": _bool,
    "uuid": _uuid,
    "timestamp": _timestamp,
    "event_time": _timestamp,
    "now": _now,
    "seq": _seq,
    "ip": _faker("ipv4_public"),
    "ipv4": _faker("ipv4_public"),
    # the Kinesis Data Generator's names
    "random.number": _kdg_number,
    "random.arrayElement": _choice,
    "random.weightedArrayElement": _kdg_weighted,
    "random.uuid": _uuid,
    "random.boolean": _bool,
    "internet.ip": _faker("ipv4_public"),
    "internet.ipv4": _faker("ipv4_public"),
    "internet.userAgent": _faker("user_agent"),
    "name.firstName": _faker("first_name"),
    "name.lastName": _faker("last_name"),
    "name.findName": _faker("name"),
    "date.now": _now,
}
# ``site`` is bound per stream (a literal), not rendered per record.
_SITE = "site"


def _maker(name: str) -> Callable[..., SlotFn] | None:
    if name in HELPERS:
        return HELPERS[name]
    provider = name.removeprefix("faker.")
    if "." not in provider and not provider.startswith("_"):
        return _faker(provider)
    return None


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
                                 "see labhelpers/templates.py for the list.", sp.expr) from None
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
                             "see labhelpers/templates.py for each placeholder's "
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


_SCRATCH: list[RenderContext] = []


def sample_context() -> RenderContext:
    # One context for compile-time checks, so that validating a template costs one Faker.
    if not _SCRATCH:
        _SCRATCH.append(RenderContext(seed=12345, pool_size=4))
    return _SCRATCH[0]


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
