"""SQL exercises (labhelpers.teach.sql_exercises): the checkers on rows computed in Python,
and, as one short integration test, the queries run for real on Flink."""

import copy
import time
from datetime import UTC, datetime

import pytest

from labhelpers.errors import ConfigError
from labhelpers.teach import sql_exercises as sx


def _ts(epoch):
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@pytest.fixture(scope="module")
def records():
    return sx.exercise_records()


def _hop_result(records, size=30, slide=10):
    want = sx.expected_hop(records, size, slide)
    rows = [[_ts(s), _ts(s + size), site, c, i, 100.0 * c / i if i else None]
            for (s, site), (c, i) in sorted(want.items())]
    return sx.QueryResult(["window_start", "window_end", "site", "clicks", "impressions", "ctr"],
                          rows)


def _top_result(records):
    rows = [[_ts(w), site, c, k + 1] for w, top in sorted(sx.expected_top(records).items())
            for k, (site, c) in enumerate(top)]
    return sx.QueryResult(["window_start", "site", "clicks", "rn"], rows)


def test_the_data_has_distinct_top_sites_every_minute(records):
    top = sx.expected_top(records)
    assert len(top) == 3
    assert [t[0][0] for _, t in sorted(top.items())] == ["shop.example", "news.example",
                                                         "blog.example"]
    for t in top.values():
        assert t[0][1] > t[1][1], "a tie would make the top 2 ambiguous"


def test_hop_checker_accepts_the_right_rows(records):
    check = sx.check_hop_ctr(_hop_result(records), records)
    assert check.ok, check.message
    assert check.message.startswith("Correct")


def _set(row, col, value):
    row[col] = value


@pytest.mark.parametrize("mutate, expect", [
    (lambda r, k: setattr(r, "columns", r.columns[:5] + ["rate"]), "no column ctr"),
    (lambda r, k: r.rows.clear(), "no rows"),
    (lambda r, k: _set(r.rows[k], 3, r.rows[k][3] + 1), "clicks is"),
    (lambda r, k: _set(r.rows[k], 4, r.rows[k][4] - 1), "impressions is"),
    (lambda r, k: _set(r.rows[k], 5, float(100 * (r.rows[k][3] // r.rows[k][4]))),
     "integer division"),
    (lambda r, k: r.rows.pop(k), "missing"),
    (lambda r, k: r.rows.append(list(r.rows[k])), "more than once"),
])
def test_hop_checker_says_what_is_wrong_in_one_sentence(records, mutate, expect):
    result = copy.deepcopy(_hop_result(records))
    # a window whose CTR integer division would change (fewer clicks than impressions)
    k = next(i for i, r in enumerate(result.rows) if 0 < r[3] < r[4])
    mutate(result, k)
    check = sx.check_hop_ctr(result, records)
    assert not check.ok
    assert expect in check.message, check.message
    assert check.message.count(". ") == 0 and check.message.endswith("."), check.message


def test_a_flink_error_is_shown_short(records):
    result = sx.QueryResult(error=": org.apache.flink.table.api.ValidationException: SQL "
                                  "validation failed. Column 'x' not found\n\tat org.apache")
    msg = sx.check_hop_ctr(result, records).message
    assert msg.startswith("Flink rejected the query (ValidationException: SQL validation "
                          "failed. Column 'x' not found): fix the SQL"), msg


def test_hop_checker_spots_tumbling_windows_and_swapped_arguments(records):
    tumble = _hop_result(records, size=10, slide=10)
    assert "10 s long, not 30 s" in sx.check_hop_ctr(tumble, records).message
    swapped = _hop_result(records, size=30, slide=30)
    assert "start every 30 s, not every 10 s" in sx.check_hop_ctr(swapped, records).message


def test_top_checker(records):
    good = _top_result(records)
    assert sx.check_top_sites(good, records).ok
    three = copy.deepcopy(good)
    three.rows.append([three.rows[0][0], "blog.example", 15, 3])
    assert "keep only rn <= 2" in sx.check_top_sites(three, records).message
    swapped = copy.deepcopy(good)
    swapped.rows[0][1], swapped.rows[1][1] = swapped.rows[1][1], swapped.rows[0][1]
    msg = sx.check_top_sites(swapped, records).message
    assert "clicks" in msg and "expected" in msg, msg
    no_rn = sx.QueryResult(["window_start", "site", "clicks"], [r[:3] for r in good.rows])
    assert "no column rn" in sx.check_top_sites(no_rn, records).message


def test_unknown_exercise_and_empty_query_list():
    with pytest.raises(ConfigError, match="hop_ctr"):
        sx.run("nope", "SELECT 1")
    with pytest.raises(ConfigError):
        sx.run_queries({})


@pytest.mark.integration
def test_queries_run_on_flink_and_are_checked(tmp_path):
    started = time.perf_counter()
    results = sx.run_queries({
        "hop": sx.EXERCISES["hop_ctr"].solution,
        "top": sx.EXERCISES["top_sites"].solution,
        "starter": sx.EXERCISES["hop_ctr"].starter,
        "broken": "SELECT nope FROM clicks",
    }, tmp_path)
    seconds = time.perf_counter() - started
    assert sx.EXERCISES["hop_ctr"].check(results["hop"]).ok, results["hop"]
    assert sx.EXERCISES["top_sites"].check(results["top"]).ok, results["top"]
    starter = sx.EXERCISES["hop_ctr"].check(results["starter"])
    assert not starter.ok and "not 30 s" in starter.message
    broken = sx.EXERCISES["hop_ctr"].check(results["broken"])
    assert not broken.ok and "nope" in broken.message
    print(f"4 queries in one Flink run: {seconds:.1f} s")
