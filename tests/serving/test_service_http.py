"""The prediction service's HTTP surface against bad and hostile requests (issue 9), on a real
``bentoml serve``: NaN, Infinity, huge integers and values pydantic would coerce are a 422 naming the
field (never a 500), oversized bodies a small JSON 413 before they are read, a big invalid body never
echoed back, every error JSON in the live API's shape (with ``detail[].loc`` as the engine's client
reads it), and the service listens on the loopback interface unless told otherwise."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from serving.control import PredictRejected, http_predict
from tests.api.services import listening_addresses, oversized, send_raw
from tests.services import ROOT, free_port

pytestmark = pytest.mark.slow  # real `bentoml serve` processes (make test-fast leaves them out)

STATE = '{"match_id": "m", "server": 1, "prematch_probability": 0.6'


@pytest.fixture(scope="module")
def service(prediction_service):
    """URL of a running prediction service with no champion (``/predict_live`` with a prior needs none): the
    session's (tests/conftest.py)."""
    return prediction_service


def _json_error(status: int, raw: bytes, headers: dict, code: int, error: str, field: str | None = None) -> dict:
    assert status == code, raw[:500]
    assert headers.get("content-type", "").startswith("application/json"), headers
    body = json.loads(raw)
    assert body["error"] == error and isinstance(body["message"], str) and body["message"], body
    if field is not None:
        assert body["detail"][0]["loc"][-1] == field, body
    return body


def _live(service: str, state_fields: str) -> tuple[int, bytes, dict]:
    return send_raw(service, "POST", "/predict_live", f'{{"states": [{STATE}{state_fields}}}]}}'.encode())


def test_a_good_state_is_answered(service):
    status, raw, _ = _live(service, ', "serve_stats": {"won_one": 3, "served_one": 4}')
    assert status == 200, raw
    assert 0 < json.loads(raw)["predictions"][0]["probability"] < 1


def test_nan_and_infinity_are_422_naming_the_field(service):
    for text, field in (
        (', "prematch_probability": NaN', "prematch_probability"),
        (', "prematch_probability": Infinity', "prematch_probability"),
        (', "season": -Infinity', "season"),
        (', "serve_stats": {"won_one": NaN, "served_one": 4}', "won_one"),
    ):
        body = f'{{"states": [{{"server": 1{text}}}]}}'.encode()
        _json_error(*send_raw(service, "POST", "/predict_live", body), 422, "validation_error", field)
    body = (
        b'{"requests": [{"player_one": 1, "player_two": 2, "surface": "Hard", "date": "2030-01-01", '
        b'"points_one": NaN}]}'
    )
    _json_error(*send_raw(service, "POST", "/predict", body), 422, "validation_error", "points_one")


def test_huge_integers_are_422_not_500(service):
    huge = "1" + "0" * 30
    for text, field in (
        (f', "serve_stats": {{"won_one": {huge}, "served_one": {huge}}}', "won_one"),
        (f', "sets": [[{huge}, 0]]', 0),
        (f', "games": [{huge}, 0]', 0),
        (f', "points": [0, {huge}]', 1),
    ):
        _json_error(*_live(service, text), 422, "validation_error", field)
    body = f'{{"requests": [{{"player_one": {huge}, "player_two": 2, "surface": "Hard", "date": "2030-01-01"}}]}}'
    status, raw, headers = send_raw(service, "POST", "/predict", body.encode())
    assert status in (422, 503) and json.loads(raw)["error"] in ("validation_error", "unavailable"), raw


def test_values_pydantic_would_coerce_are_refused(service):
    for text, field in (
        (', "server": true', "server"),
        (', "best_of": "5"', "best_of"),
        (', "best_of": 5.0', "best_of"),
        (', "prematch_probability": "0.6"', "prematch_probability"),
        (', "season": "2012"', "season"),
        (', "serve_stats": {"won_one": true, "served_one": 4}', "won_one"),
        (', "match_id": 42', "match_id"),
    ):
        _json_error(*_live(service, text), 422, "validation_error", field)


def test_bodies_over_the_limit_are_refused_before_they_are_read(service):
    for path in ("/predict_live", "/predict"):
        for chunked in (False, True):
            status, raw = oversized(
                service, path, declared=64 << 20, sent=20 << 20 if chunked else 1 << 20, chunked=chunked, timeout=20
            )
            assert status == 413 and len(raw) < 1000, raw[:300]
            assert json.loads(raw)["error"] == "payload_too_large"
    test_a_good_state_is_answered(service)  # still serving


def test_a_big_invalid_body_is_never_echoed(service):
    big = "x" * (2 << 20)
    status, raw, headers = _live(service, f', "server": 3, "tournament": "{big}"')
    body = _json_error(status, raw, headers, 422, "validation_error")
    assert len(raw) < 5000, len(raw)
    assert all(len(str(d.get("input", ""))) <= 210 for d in body["detail"])
    states = ",".join(['{"server": 7, "prematch_probability": 2}'] * 5000)  # 10,000 errors
    status, raw, headers = send_raw(service, "POST", "/predict_live", f'{{"states": [{states}]}}'.encode())
    body = _json_error(status, raw, headers, 422, "validation_error")
    assert len(body["detail"]) <= 10 and len(raw) < 5000 and "10000" in body["message"]


def test_every_error_is_json_in_one_shape(service):
    _json_error(*send_raw(service, "GET", "/no/such/path"), 404, "not_found")
    _json_error(*send_raw(service, "GET", "/predict_live"), 405, "method_not_allowed")
    _json_error(*send_raw(service, "POST", "/predict_live", b"{oops"), 422, "validation_error")
    _json_error(*send_raw(service, "POST", "/predict_live", b'{"states": []}'), 422, "validation_error", "states")
    body = b'{"requests": [{"player_one": 1, "player_two": 2, "surface": "Hard", "date": "2030-01-01"}]}'
    _json_error(*send_raw(service, "POST", "/predict", body), 503, "unavailable")  # no champion in this home


def test_the_engine_s_client_still_finds_the_rejected_request(service):
    """``serving.control.http_predict`` takes the first integer of ``detail[0].loc`` as the index."""
    ok = {"player_one": 1, "player_two": 2, "surface": "Hard", "date": "2030-01-01"}
    with pytest.raises(PredictRejected) as caught:
        http_predict(service)([ok, {**ok, "surface": "Ice"}])
    assert caught.value.index == 1 and "surface" in str(caught.value)


@pytest.fixture(scope="module")
def live_api(tmp_path_factory):
    """The live API's app in process, on an empty database (its errors are the app's own handlers and
    middlewares, the same as under ``python -m serving.api``)."""
    from fastapi.testclient import TestClient

    from serving.api.app import ApiConfig, create_app
    from serving.api.live import LiveService
    from serving.api.status import ServiceStatus
    from storage.db import make_engine, migrate

    url = f"sqlite:///{tmp_path_factory.mktemp('live-api-errors') / 'live.db'}"
    migrate(url)
    db = make_engine(url)
    app = create_app(
        LiveService(db, 1000.0), ServiceStatus("http://127.0.0.1:9", "http://127.0.0.1:9"), ApiConfig(run_service=False)
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
    db.dispose()


def _shape(status: int, content_type: str, body: dict, docs: str) -> tuple:
    """What the two services' answers to the same mistake must have in common: status, media type, the keys,
    the error code, the keys of each ``detail`` entry, and the message (with the docs path as ``<docs>``)."""
    detail = body["detail"]
    return (
        status,
        content_type.split(";")[0],
        sorted(body),
        body["error"],
        None if detail is None else [sorted(d) for d in detail],
        body["message"].replace(docs, "<docs>"),
    )


@pytest.mark.parametrize(
    ("mistake", "live", "prediction", "body", "status", "error"),
    [
        ("unknown path", ("GET", "/no/such/path"), ("GET", "/no/such/path"), b"", 404, "not_found"),
        ("unknown path, POST", ("POST", "/no/such/path"), ("POST", "/no/such/path"), b"{}", 404, "not_found"),
        ("invalid body", ("POST", "/live/alerts/subscribe"), ("POST", "/predict_live"), b"[]", 422, "validation_error"),
        (
            "malformed JSON",
            ("POST", "/live/alerts/subscribe"),
            ("POST", "/predict_live"),
            b"{oops",
            422,
            "validation_error",
        ),
        (
            "not UTF-8",
            ("POST", "/live/alerts/subscribe"),
            ("POST", "/predict_live"),
            b"\xff\xfe",
            422,
            "validation_error",
        ),
    ],
)
def test_both_services_answer_a_mistake_in_one_shape(service, live_api, mistake, live, prediction, body, status, error):
    """The live API and the prediction service (a real ``bentoml serve``: BentoML's own 404s too) answer the
    same mistake with the same JSON: ``{"error", "message", "detail"}``, the same code and the same sentence."""
    resp = live_api.request(live[0], live[1], content=body, headers={"Content-Type": "application/json"})
    theirs = _shape(resp.status_code, resp.headers["content-type"], resp.json(), "/docs")
    got, raw, headers = send_raw(service, prediction[0], prediction[1], body)
    ours = _shape(got, headers["content-type"], json.loads(raw), "/api/docs")
    assert ours == theirs, mistake
    assert ours[:2] == (status, "application/json") and ours[2] == ["detail", "error", "message"] and ours[3] == error


def test_a_body_that_is_not_json_is_told_plainly(service):
    """Not ``invalid body.1: JSON decode error``: the parser's reason and where, with no integer in ``loc`` (the
    engine's client would take it for the index of a refused request)."""
    status, raw, headers = send_raw(service, "POST", "/predict", b'{"requests": [1,]}')
    body = _json_error(status, raw, headers, 422, "validation_error", "body")
    assert (
        body["message"].startswith("the body is not valid JSON: ")
        and "Expecting value at character 16" in body["message"]
    ), body
    assert body["detail"] == [{"loc": ["body"], "msg": body["message"], "type": "json_invalid"}]


def test_score_errors_say_what_is_expected(service):
    """A score the schema refuses (calls instead of counts) or no match can reach (an impossible set, games, or
    points) names the part at fault and says what it must be, with an example; the message is not cut."""
    for text, field, says in (
        (', "points": ["30", "40"]', "points", "points are integers, not calls: 30-40 is [2, 3]"),
        (', "points": "A-40"', "points", "A-40 is [4, 3]"),
        (', "points": ["15", "x"]', "points", "0, 1, 2, 3, 4 for 0, 15, 30, 40, A, e.g. [2, 3] for 30-40"),
        (', "points": [2.0, 1]', "points", "in a tie-break the points won, e.g. [5, 4]"),
        (
            ', "points": [30, 40]',
            "points",
            "cannot be a game in progress; expected points won, not calls: 30-40 is [2, 3]",
        ),
        (', "points": [5, 1]', "points", "expected the points won in this game [one, two]: 0, 1, 2, 3, 4 for 0, 15"),
        (', "games": [6, 6], "points": [9, 2]', "points", "expected the points won in this tie-break [one, two], e.g."),
        (', "games": [9, 2]', "games", "games 9-2 cannot be the score of a set in progress; expected the games"),
        (', "games": [7, 5]', "games", "e.g. [3, 2] (a finished set goes in sets)"),
        (', "sets": [[6, 2], [6, 1], [6, 0]]', "sets", "set 3 was played after the match was over (best of 3)"),
        (', "sets": [[7, 2]]', "sets", "set 1 at 7-2 is not a finished set (best of 3); expected the completed sets"),
        (', "sets": [[6, 2], [6, 1]], "games": [1, 0]', "games", "expected [0, 0]: the sets end the match"),
        (', "sets": [[6, 2], [6, 1]], "points": [1, 0]', "points", "expected [0, 0]: the sets end the match"),
    ):
        body = _json_error(*_live(service, text), 422, "validation_error", field)
        assert says in body["message"] and says in body["detail"][0]["msg"], (text, body["message"])
        assert not body["message"].endswith("..."), body["message"]  # short enough to be sent whole
    for text in (', "points": [2, 3]', ', "points": [6, 5]', ', "games": [6, 6], "points": [9, 8]'):
        status, raw, _ = _live(service, text)  # counts, counts past deuce, a long tie-break: accepted
        assert status == 200, (text, raw)


def test_the_service_listens_on_loopback_by_default(tmp_path):
    """``bentoml serve`` without ``--host`` (BentoML's own default is 0.0.0.0)."""
    port = free_port()
    env = {**os.environ, "COURTSIDE_HOME": str(tmp_path), "COURTSIDE_MODEL_POLL_S": "3600"}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = tmp_path / "bentoml.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "bentoml"),
                "serve",
                "serving.service:PredictionService",
                "--port",
                str(port),
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=2):
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.5)
        assert listening_addresses(port) == {"127.0.0.1"}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
