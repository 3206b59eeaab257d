"""Plans with a short window, and a Retry-After that is never an invitation to be refused again."""

from __future__ import annotations

import time

import pytest

from tests.conftest import TEST_PLANS

BURST = {**TEST_PLANS, "burst": {"requests_per_minute": 3, "codes_per_month": 1000, "window_seconds": 2}}


@pytest.mark.parametrize("app_config", [{"PLANS": BURST}])
def test_waiting_retry_after_is_always_enough(client, make_key) -> None:
    auth = {"Authorization": f"Bearer {make_key(plan='burst')}"}
    for _round in range(2):
        statuses = [client.get("/v1/account/usage", headers=auth).status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        refused = client.get("/v1/account/usage", headers=auth)
        assert refused.status_code == 429
        wait = int(refused.headers["Retry-After"])
        assert 1 <= wait <= 3
        time.sleep(wait)


@pytest.mark.parametrize("app_config", [{"PLANS": BURST}])
def test_usage_reports_the_plan_window(client, make_key) -> None:
    auth = {"Authorization": f"Bearer {make_key(plan='burst')}"}
    limit = client.get("/v1/account/usage", headers=auth).get_json()["rate_limit"]
    assert (limit["limit"], limit["window_seconds"]) == (3, 2)
