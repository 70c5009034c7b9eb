"""Every loopback fake takes the kit's fault knobs the same way, each in its own API's error envelope."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.fakes._kit import Fault, LoopbackFake
from tests.fakes.apiframe_server import FakeApiframe
from tests.fakes.azerion_server import FakeAzerion
from tests.fakes.cometapi_server import FakeCometApi
from tests.fakes.google_server import FakeGoogle
from tests.fakes.interactions_server import FakeInteractions
from tests.fakes.uniall_server import FakeUniAll

# (fake, a paid endpoint, its path, where the error message sits in the envelope)
FAKES = {
    "google": (FakeGoogle, "submit", "/v1beta/models/veo-3.1-generate-preview:predictLongRunning",
               lambda body: body["error"]["message"]),
    "apiframe": (FakeApiframe, "submit", "/v2/videos/generate", lambda body: body["error"]),
    "azerion": (FakeAzerion, "generate", "/v1/videos/generation", lambda body: body["error"]["message"]),
    "uniall": (FakeUniAll, "submit", "/v1/video/generations", lambda body: body["error"]["message"]),
    "cometapi": (FakeCometApi, "submit", "/v1/videos", lambda body: body["error"]["message"]),
    "omni": (FakeInteractions, "create", "/v1beta/interactions", lambda body: body["error"]["message"]),
}


@pytest.fixture(scope="module", autouse=True)
def client():
    yield CLIENT
    CLIENT.close()


@pytest.fixture(scope="module", params=sorted(FAKES))
def served(request: pytest.FixtureRequest):
    cls, endpoint, path, message = FAKES[request.param]
    with cls() as fake:
        yield fake, endpoint, path, message


@pytest.fixture
def case(served):
    served[0].reset()
    return served


CLIENT = httpx.Client(timeout=5)  # one client: building its TLS context costs more than a request here


def post(fake: LoopbackFake, path: str) -> httpx.Response:
    return CLIENT.post(fake.url + path, json={"prompt": "p"})


def test_a_status_fault_answers_in_the_apis_envelope_with_retry_after_and_is_counted(case):
    fake, endpoint, path, message = case
    fake.fail(endpoint, 429, retry_after="3", message="slow down")
    answer = post(fake, path)
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "3"
    assert message(answer.json()) == "slow down"
    assert fake.count(endpoint) == 1 and len(fake.bodies(endpoint)) == 1
    assert post(fake, path).status_code != 429  # one fault, one request


def test_connection_faults_tell_a_request_that_never_arrived_from_a_lost_answer(case):
    fake, endpoint, path, _ = case
    fake.faults.add(endpoint, Fault.reset_before())
    fake.reset_connection(endpoint)
    for _ in range(2):
        with pytest.raises(httpx.TransportError):
            post(fake, path)
    assert fake.count(endpoint) == 1  # reset_before: never recorded; reset_after: recorded, unanswered


def test_hostile_and_slow_faults(case):
    fake, endpoint, path, _ = case
    fake.faults.add(endpoint, Fault.hostile(b"[" * 3000, status=200))
    fake.faults.add(endpoint, Fault.slow(0.2))
    assert post(fake, path).content == b"[" * 3000
    with pytest.raises(httpx.ReadTimeout):
        CLIENT.post(fake.url + path, json={}, timeout=0.05)
    # the client gave up first: on a busy machine the server may record the request a moment later
    deadline = time.monotonic() + 5
    while fake.count(endpoint) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake.count(endpoint) == 2


def test_control_routes_configure_faults_and_refuse_unknown_knobs(case):
    fake, endpoint, path, _ = case
    answer = CLIENT.post(f"{fake.url}/_fake/config", json={"fail": [{"endpoint": endpoint, "status": 503}]})
    assert answer.status_code == 200 and answer.json()["counts"] == {}
    assert post(fake, path).status_code == 503
    assert CLIENT.get(f"{fake.url}/_fake/stats").json()["counts"] == {endpoint: 1}
    refused = CLIENT.post(f"{fake.url}/_fake/config", json={"pending_pols": 3})
    assert refused.status_code == 400 and "pending_pols" in refused.json()["error"]


def test_an_unknown_route_is_a_404_in_the_apis_envelope_and_uncounted(case):
    fake, _, _, message = case
    answer = CLIENT.get(f"{fake.url}/nowhere", timeout=5)
    assert answer.status_code == 404 and "nowhere" in message(answer.json())
    assert fake.total() == 0


def test_reset_restores_knobs_and_forgets_faults(case):
    fake, endpoint, path, _ = case
    for knob in fake.knobs:
        setattr(fake, knob, "changed")
    fake.fail(endpoint, 500)
    fake.reset()
    assert all(getattr(fake, knob) != "changed" for knob in fake.knobs)
    assert post(fake, path).status_code != 500
