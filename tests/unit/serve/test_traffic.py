import random

import pytest

from shipyard.serve.traffic import ABPolicy, CanaryPolicy, Router, ServedModelSpec, ShadowPolicy


def _router(policy, seed=0):
    return Router("churn", ServedModelSpec(model="churn", policy=policy), rng=random.Random(seed))


def test_ab_split_follows_the_weights_and_keys_are_sticky():
    router = _router(ABPolicy(weights={"production": 0.7, "challenger": 0.3}))
    routes = [router.route({"x-request-key": f"user-{i}"}).answer for i in range(4000)]
    assert routes.count("challenger") / 4000 == pytest.approx(0.3, abs=0.03)
    for i in range(200):
        key = {"x-request-key": f"user-{i}"}
        assert router.route(key) == router.route(key)


def test_ab_without_a_key_is_random_but_weighted():
    router = _router(ABPolicy(weights={"production": 1, "challenger": 1}))
    routes = [router.route({}).answer for _ in range(4000)]
    assert routes.count("production") / 4000 == pytest.approx(0.5, abs=0.03)


def test_canary_rolls_back_on_errors_and_stops_sending():
    router = _router(CanaryPolicy(percent=50, max_error_rate=0.1, min_requests=10))
    decisions = [
        router.observe("challenger", error=True, latency_ms=1.0, score=None) for _ in range(10)
    ]
    assert decisions[-1] == "rollback"
    assert router.canary.status == "rolled_back"
    assert "error rate" in router.canary.reason
    assert all(router.route({}).answer == "production" for _ in range(200))


def test_canary_rolls_back_on_latency_and_score_shift():
    slow = _router(CanaryPolicy(max_p99_ms=50, min_requests=5))
    for _ in range(5):
        decision = slow.observe("challenger", error=False, latency_ms=120.0, score=0.5)
    assert decision == "rollback"
    assert "p99" in slow.canary.reason
    shifted = _router(CanaryPolicy(max_score_shift=0.2, min_requests=5))
    for _ in range(20):
        shifted.observe("production", error=False, latency_ms=1.0, score=0.2)
    for _ in range(5):
        decision = shifted.observe("challenger", error=False, latency_ms=1.0, score=0.9)
    assert decision == "rollback"


def test_canary_promotes_after_the_stated_volume_without_incident():
    router = _router(CanaryPolicy(promote_after=30, min_requests=10))
    decisions = [
        router.observe("challenger", error=False, latency_ms=1.0, score=0.3) for _ in range(30)
    ]
    assert decisions[:-1] == [None] * 29
    assert decisions[-1] == "promote"
    assert router.canary.status == "promoted"


def test_shadow_answers_with_the_champion_and_copies_to_the_challenger():
    route = _router(ShadowPolicy()).route({})
    assert (route.answer, route.shadow) == ("production", "challenger")


def test_bad_policies_are_refused():
    with pytest.raises(ValueError, match="weights"):
        ABPolicy(weights={"production": 0, "challenger": 0})
    with pytest.raises(ValueError, match="less than or equal to 100"):
        CanaryPolicy(percent=150)
