"""Runtime behaviour: hot swap without failed requests, shadow, canary on real models."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from shipyard.registry.input_contract import ModelInput
from shipyard.serve.runtime import Runtime
from shipyard.serve.traffic import DeploySpec

# Two requests' rows as the contract decodes them (shipyard.registry.input_contract).
ROWS = ModelInput(
    np.array([[3.0, 90.0], [40.0, 20.0]]),
    np.array([["basic"], ["pro"]], dtype=object),
    ("tenure", "charges"),
    ("plan",),
)


def _runtime(source, **model):
    spec = DeploySpec(models={"churn": {"model": "churn", **model}}, poll_interval_s=3600)
    return Runtime(spec, source)


def test_an_alias_move_swaps_models_while_requests_keep_flowing(source):
    async def scenario():
        runtime = _runtime(source)
        await runtime.start()
        errors, versions = 0, []
        refreshed = asyncio.Event()

        async def stream():
            # Requests flow before, during and after the swap: until the refresh is done,
            # then 20 more (small batches score inline, so a fixed count could end too soon).
            nonlocal errors
            after = 0
            while after < 20:
                try:
                    answer = await runtime.answer("churn", ROWS, {})
                    versions.append(answer.model.version)
                except Exception:
                    errors += 1
                after += refreshed.is_set()
                await asyncio.sleep(0)

        task = asyncio.create_task(stream())
        while not versions:
            await asyncio.sleep(0)
        source.aliases[("churn", "production")] = 2
        swapped = await runtime.refresh()
        refreshed.set()
        await task
        await runtime.stop()
        return swapped, errors, versions

    swapped, errors, versions = asyncio.run(scenario())
    assert swapped == 1
    assert errors == 0
    assert versions[0] == 1
    assert versions[-1] == 2
    assert versions == sorted(versions)  # once swapped, never back


def test_shadow_scores_the_challenger_without_affecting_the_answer(source, bundles):
    async def scenario():
        runtime = _runtime(source, policy={"type": "shadow"})
        await runtime.start()
        answer = await runtime.answer("churn", ROWS, {})
        shadow_model, alias, shadow_scored = await answer.shadow
        await runtime.stop()
        return answer, shadow_model, alias, shadow_scored

    answer, shadow_model, alias, shadow_scored = asyncio.run(scenario())
    assert answer.alias == "production"
    assert answer.model.version == 1
    assert (alias, shadow_model.version) == ("challenger", 2)
    expected = bundles[2].predict_input(ROWS).proba  # the server may run the verified ONNX export
    assert np.allclose(shadow_scored.probabilities, expected, atol=1e-5)


def test_a_failing_challenger_canary_rolls_back_by_itself(source):
    async def scenario():
        runtime = _runtime(
            source,
            policy={"type": "canary", "percent": 50, "min_requests": 5, "max_error_rate": 0.2},
        )
        await runtime.start()
        challenger = runtime.slots[("churn", "challenger")].model

        def broken(_frame):
            raise RuntimeError("challenger crashed")

        challenger.batcher._predict = broken
        outcomes = []
        for i in range(200):
            try:
                answer = await runtime.answer("churn", ROWS, {"x-request-key": str(i)})
                outcomes.append(answer.alias)
            except RuntimeError:
                outcomes.append("error")
        status = runtime.routers["churn"].canary
        await runtime.stop()
        return outcomes, status

    outcomes, status = asyncio.run(scenario())
    assert status.status == "rolled_back"
    assert outcomes.count("error") == 5  # judged after min_requests, then no more traffic
    assert set(outcomes[-100:]) == {"production"}


def test_micro_batching_merges_concurrent_requests(source, bundles):
    async def scenario():
        runtime = _runtime(source)
        await runtime.start()
        answers = await asyncio.gather(*(runtime.answer("churn", ROWS, {}) for _ in range(50)))
        batcher = runtime.slots[("churn", "production")].model.batcher
        await runtime.stop()
        return answers, batcher

    answers, batcher = asyncio.run(scenario())
    expected = bundles[1].predict_input(ROWS).labels.tolist()
    assert all(a.scored.labels == expected for a in answers)
    assert batcher.rows == 100
    assert batcher.batches < 50


def test_unknown_model_is_not_found(source):
    from shipyard.core.errors import NotFound

    runtime = _runtime(source)
    with pytest.raises(NotFound):
        runtime.served("nope")


def test_the_verified_onnx_fast_path_serves_and_agrees_with_the_native_model(source, bundles):
    async def scenario(fast_path: bool):
        spec = DeploySpec(
            models={"churn": {"model": "churn"}}, poll_interval_s=3600, fast_path=fast_path
        )
        runtime = Runtime(spec, source)
        await runtime.start()
        answer = await runtime.answer("churn", ROWS, {})
        await runtime.stop()
        return answer

    fast, native = asyncio.run(scenario(True)), asyncio.run(scenario(False))
    assert fast.model.engine == "onnx"
    assert native.model.engine == "native"
    assert fast.scored.labels == native.scored.labels
    assert np.allclose(fast.scored.probabilities, native.scored.probabilities, atol=1e-5)


@pytest.mark.parametrize("fast_path", [True, False], ids=["onnx-inline", "native-thread"])
def test_each_request_of_a_batch_gets_its_own_rows_back(source, bundles, fast_path):
    # 40 concurrent requests of 1-3 distinct rows each: one batched call per burst must still
    # answer every request with exactly its own rows, in order.
    requests = [
        ModelInput(
            np.array([[float(i + r), 20.0 + 3 * i - r] for r in range(1 + i % 3)]),
            np.array([[("basic", "plus", "pro")[(i + r) % 3]] for r in range(1 + i % 3)], object),
            ("tenure", "charges"),
            ("plan",),
        )
        for i in range(40)
    ]

    async def scenario():
        spec = DeploySpec(
            models={"churn": {"model": "churn"}}, poll_interval_s=3600, fast_path=fast_path
        )
        runtime = Runtime(spec, source)
        await runtime.start()
        answers = await asyncio.gather(*(runtime.answer("churn", r, {}) for r in requests))
        batcher = runtime.slots[("churn", "production")].model.batcher
        await runtime.stop()
        return answers, batcher

    answers, batcher = asyncio.run(scenario())
    assert batcher.batches < len(requests)  # they were batched
    for request, answer in zip(requests, answers, strict=True):
        alone = bundles[1].predict_input(request)
        assert answer.scored.labels == alone.labels.tolist()
        np.testing.assert_allclose(answer.scored.probabilities, alone.proba, rtol=1e-5)
