"""The SDK's model-registry calls against a real `kiln server`: register a
model, version it from a run, promote with archive_existing_versions, alias,
search across pages, and the errors MLflow's codes map to."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import pytest

import kiln

from test_tracking import Server

ML = "/api/2.0/mlflow"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("kiln-reg") / "data").start()
    srv.key = srv.api_key()  # type: ignore[attr-defined]
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def client(server: Server) -> kiln.Client:
    return kiln.Client(server.url, api_key=server.key)  # type: ignore[attr-defined]


def uniq(prefix: str) -> str:
    return f"{prefix}-{time.time_ns()}"


def test_register_version_promote_alias(client: kiln.Client) -> None:
    name = uniq("churn")
    m = client.create_registered_model(name, description="d", tags={"team": "growth"})
    assert m["name"] == name and m["description"] == "d" and m["tags"] == [{"key": "team", "value": "growth"}]
    run = client._request_dict("POST", f"{ML}/runs/create", json={"experiment_id": "0"})["run"]["info"]
    v1 = client.create_model_version(name, run["artifact_uri"] + "/model", run_id=run["run_id"], tags={"k": "v"})
    v2 = client.create_model_version(name, f"runs:/{run['run_id']}/model")
    assert (v1["version"], v2["version"]) == ("1", "2") and v1["status"] == "READY"
    assert client.transition_model_version_stage(name, 1, "production")["current_stage"] == "Production"
    v2p = client.transition_model_version_stage(name, "2", "Production", archive_existing_versions=True)
    assert v2p["current_stage"] == "Production"
    got = client.get_registered_model(name)
    assert [(v["version"], v["current_stage"]) for v in got["latest_versions"]] == [("2", "Production"),
                                                                                    ("1", "Archived")]
    client.set_registered_model_alias(name, "champion", 2)
    assert client.get_model_version_by_alias(name, "champion")["version"] == "2"
    assert client.get_registered_model(name)["aliases"] == [{"alias": "champion", "version": "2"}]


def test_search_pages_and_errors(client: kiln.Client) -> None:
    prefix = uniq("many")
    for i in range(5):
        client.create_registered_model(f"{prefix}-{i}")
    found = client.search_registered_models(filter=f"name LIKE '{prefix}-%'", order_by=["name DESC"])
    assert [m["name"] for m in found] == [f"{prefix}-{i}" for i in reversed(range(5))]
    assert len(client.search_registered_models(filter=f"name LIKE '{prefix}-%'", max_results=2)) == 2
    with pytest.raises(kiln.KilnError) as e:
        client.create_registered_model(f"{prefix}-0")
    assert e.value.error_code == "RESOURCE_ALREADY_EXISTS"
    with pytest.raises(kiln.KilnError) as e:
        client.get_registered_model(uniq("missing"))
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(kiln.KilnError) as e:
        client.create_model_version(f"{prefix}-0", "/etc/passwd")
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(kiln.KilnError) as e:
        client.transition_model_version_stage(f"{prefix}-0", 1, "Live")
    assert e.value.error_code in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST")


def test_register_model_and_transition_like_mlflow(client: kiln.Client) -> None:
    """register_model makes the registered model when missing (and only
    then), takes the run id from a runs:/ URI; transition is the short form."""
    name = uniq("reg")
    run = client._request_dict("POST", f"{ML}/runs/create", json={"experiment_id": "0"})["run"]["info"]
    v1 = client.register_model(f"runs:/{run['run_id']}/model", name, tags={"k": "v"}, description="first")
    assert (v1["name"], v1["version"], v1["run_id"], v1["description"]) == (name, "1", run["run_id"], "first")
    v2 = client.register_model(run["artifact_uri"] + "/model", name)
    assert v2["version"] == "2" and not v2.get("run_id")
    assert client.transition(name, 2, "staging")["current_stage"] == "Staging"
    with pytest.raises(kiln.KilnError) as e:
        client.register_model("/etc/passwd", name)  # a local path is refused, the model stays
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
    assert len(client.get_registered_model(name)["latest_versions"]) == 2
