"""The analytics app's parameters: one object, one set of defaults, one conversion.

``JobParams`` is what a student, the command line, the evaluation and the managed service's
runtime properties all set: the window, the lateness and the forest's parameters (the
original lab's names, see ``ForestParams``). Build it with ``JobParams.of(...)`` from
anything a caller has (another JobParams, a flat dict of the lab's names, keyword
arguments); write it as property groups with ``groups()`` and read it back with
``from_groups``. Nothing else holds a default for these values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .errors import ConfigError
from .forest import ForestParams

# Property group ids (same names in the local file and the managed service's configuration).
GROUP_SQL = "lab.sql"
GROUP_FOREST = "lab.forest"

_SQL_LIMITS = {"window_seconds": (1, 3600), "lateness_seconds": (0, 3600)}
_FOREST_NAMES = tuple(f.name for f in fields(ForestParams))


@dataclass(frozen=True)
class JobParams:
    """window_seconds: length of the tumbling event-time windows (lab: 10).
    lateness_seconds: how late a record may arrive before its window is reported without
      it; a later record goes to the dead letters with reason ``late`` (lab: 5).
    forest: the Random Cut Forest and alert rule (``ForestParams``).
    """

    window_seconds: int = 10
    lateness_seconds: int = 5
    forest: ForestParams = field(default_factory=ForestParams)

    def __post_init__(self) -> None:
        for name, (lo, hi) in _SQL_LIMITS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ConfigError(f"{name}={value!r} is out of range",
                                  f"use a whole number of seconds from {lo} to {hi}.")

    @classmethod
    def of(cls, params: JobParams | Mapping[str, Any] | None = None, /,
           **changes: Any) -> JobParams:
        """The one conversion: ``params`` (a JobParams, a flat dict of the lab's names such as
        ``{"window_seconds": 5, "threshold": 2.5}``, or a dict with a ``forest`` dict),
        then ``changes`` on top. None values mean "keep". Unknown names are an error."""
        base = params if isinstance(params, JobParams) else cls()
        layers = [] if params is None or isinstance(params, JobParams) else [dict(params)]
        layers.append({k: v for k, v in changes.items() if v is not None})
        flat: dict[str, Any] = {}
        for layer in layers:  # a whole ``forest`` first, single names on top
            nested = layer.pop("forest", None)
            flat.update(nested.to_dict() if isinstance(nested, ForestParams) else nested or {})
            flat.update(layer)
        unknown = set(flat) - set(_SQL_LIMITS) - set(_FOREST_NAMES)
        if unknown:
            raise ConfigError(
                f"Unknown app parameter(s) {', '.join(sorted(unknown))}",
                f"use {', '.join(_SQL_LIMITS)} or a forest parameter "
                f"({', '.join(_FOREST_NAMES)}).")
        sql = {k: v for k, v in flat.items() if k in _SQL_LIMITS}
        forest = {k: v for k, v in flat.items() if k in _FOREST_NAMES}
        return replace(base, **sql, forest=ForestParams.from_dict(
            {**base.forest.to_dict(), **forest}))

    def to_dict(self) -> dict[str, Any]:
        """Flat: the window, the lateness and every forest parameter, by the lab's names."""
        return {"window_seconds": self.window_seconds,
                "lateness_seconds": self.lateness_seconds, **self.forest.to_dict()}

    def changes_from(self, other: JobParams) -> list[str]:
        """What differs from ``other``, as ``name old -> new`` (empty: the same)."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [f"{k} {theirs[k]} -> {mine[k]}" for k in mine if mine[k] != theirs[k]]

    def groups(self) -> list[dict[str, Any]]:
        """The two property groups that carry these parameters (file or managed service)."""
        return [_group(GROUP_SQL, {"window_seconds": self.window_seconds,
                                   "lateness_seconds": self.lateness_seconds}),
                _group(GROUP_FOREST, self.forest.to_dict())]

    @classmethod
    def from_groups(cls, by_id: Mapping[str, Mapping[str, str]]) -> JobParams:
        """Read the parameters back from property groups (values are strings there)."""
        sql = dict(by_id.get(GROUP_SQL, {}))
        unknown = set(sql) - set(_SQL_LIMITS)
        if unknown:
            raise ConfigError(f"Unknown key(s) in {GROUP_SQL}: {', '.join(sorted(unknown))}",
                              f"use {' and '.join(_SQL_LIMITS)}.")
        forest = {k: _typed(k, v) for k, v in by_id.get(GROUP_FOREST, {}).items()}
        return cls.of({k: int(v) for k, v in sql.items()}, **forest)

    @classmethod
    def from_pairs(cls, pairs: Iterable[str], params: JobParams | Mapping[str, Any] | None = None
                   ) -> JobParams:
        """``NAME=VALUE`` texts (the command line's ``--param``) on top of ``params``."""
        values = {}
        for pair in pairs:
            name, sep, text = pair.partition("=")
            if not sep or not name:
                raise ConfigError(f"--param {pair!r} is not NAME=VALUE",
                                  "write e.g. --param threshold=3.5 --param window_seconds=5.")
            values[name.strip()] = _typed(name.strip(), text.strip())
        return cls.of(params, **values)


def _typed(name: str, text: str) -> Any:
    """A parameter's value from its text, typed like its default (unknown names: left as
    text, so that ``of`` names them in its error)."""
    default = JobParams().to_dict().get(name)
    try:
        if isinstance(default, bool) or default is None or isinstance(default, str):
            return text
        return type(default)(float(text)) if isinstance(default, int) else float(text)
    except ValueError:
        raise ConfigError(f"Parameter {name}={text!r} is not a number",
                          f"give a number, e.g. {name}={default}.") from None


def _group(gid: str, values: Mapping[str, Any]) -> dict[str, Any]:
    return {"PropertyGroupId": gid, "PropertyMap": {k: str(v) for k, v in values.items()}}
