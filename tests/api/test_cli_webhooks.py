"""`kiln webhooks` against a real server: create (the secret printed once),
list, test (waits for the outcome, exit 1 when the receiver fails it),
delete, and usage errors."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from kiln_harness import register_secret, scaled
from test_webhooks import Receiver, free_port, verify


@pytest.fixture
def kiln(server, kiln_binary, tmp_path, make_user):
    user = make_user()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
    env.update(KILN_CONFIG_DIR=str(tmp_path / "cfg"), KILN_URL=server.url)

    def run(*args, stdin=None, ok=True):
        p = subprocess.run([kiln_binary, *args], input=stdin, capture_output=True, text=True, env=env,
                           timeout=scaled(90))
        if ok:
            assert p.returncode == 0, (args, p.returncode, p.stdout, p.stderr)
        return p

    run("login", "--username", user.username, "--password-stdin", stdin=user.password + "\n")
    return run


def test_webhooks_cli(kiln):
    rec = Receiver()
    try:
        made = json.loads(kiln("webhooks", "create", "--url", rec.url, "--events",
                               "MODEL_VERSION_CREATED,REGISTERED_MODEL_ALIAS_SET", "--model", "churn",
                               "--json").stdout)
        secret, hook = made["secret"], made["webhook"]
        register_secret(secret)
        assert hook["events"] == ["MODEL_VERSION_CREATED", "REGISTERED_MODEL_ALIAS_SET"]
        assert hook["model_name"] == "churn"
        table = kiln("webhooks", "list").stdout
        assert hook["id"] in table and "churn" in table and "ACTIVE" in table and secret not in table
        out = kiln("webhooks", "test", hook["id"]).stdout
        assert "SUCCEEDED" in out and "200" in out
        assert verify(rec.got(1)[0], secret)["event"] == "TEST"
        plain = kiln("webhooks", "create", "--url", rec.url, "--events", "MODEL_VERSION_CREATED").stdout
        assert "shown only now" in plain
        register_secret(plain.strip().splitlines()[-1])
        listed = json.loads(kiln("webhooks", "list", "--json").stdout)["webhooks"]
        assert len(listed) == 2
        assert "deleted" in kiln("webhooks", "delete", hook["id"]).stdout
        assert [w["id"] for w in json.loads(kiln("webhooks", "list", "--json").stdout)["webhooks"]] != [hook["id"]]
    finally:
        rec.close()
    # a receiver that is down: the test fails, and says why
    down = json.loads(kiln("webhooks", "create", "--url", f"http://127.0.0.1:{free_port()}/x", "--events",
                           "MODEL_VERSION_CREATED", "--json").stdout)
    register_secret(down["secret"])
    p = kiln("webhooks", "test", down["webhook"]["id"], ok=False)
    assert p.returncode == 1 and "FAILED" in p.stderr


def test_webhooks_cli_usage_errors(kiln):
    for args, code, fragment in [
        (("webhooks",), 2, "usage"),
        (("webhooks", "frobnicate"), 2, "unknown webhooks command"),
        (("webhooks", "create", "--url", "http://x/"), 2, "--events"),
        (("webhooks", "delete"), 2, "webhook id"),
        (("webhooks", "test", "../../etc"), 2, "webhook id"),
        (("webhooks", "list", "--project", "nope"), 2, "project id"),
        (("webhooks", "list", "--bogus", "1"), 2, "unknown option"),
        (("webhooks", "create", "--url", "ftp://x/", "--events", "MODEL_VERSION_CREATED"), 1, "INVALID_PARAMETER_VALUE"),
        (("webhooks", "delete", "0" * 32), 1, "RESOURCE_DOES_NOT_EXIST"),
    ]:
        p = kiln(*args, ok=False)
        assert p.returncode == code, (args, p.returncode, p.stderr)
        assert fragment in p.stderr, (args, p.stderr)
