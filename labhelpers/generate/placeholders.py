"""Placeholders of record templates, and the render context (one seeded Faker per run).

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
"""

from __future__ import annotations

import bisect
import time
import uuid as uuidlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ..errors import GeneratorError
from ..job.contracts import format_event_time

DEFAULT_POOL_SIZE = 1000

# (ms, ts) -> value: ms is the record's event time in epoch ms, ts the same as wire text.
SlotFn = Callable[[int, str], Any]


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


_SCRATCH: list[RenderContext] = []


def sample_context() -> RenderContext:
    # One context for compile-time checks, so that validating a template costs one Faker.
    if not _SCRATCH:
        _SCRATCH.append(RenderContext(seed=12345, pool_size=4))
    return _SCRATCH[0]
