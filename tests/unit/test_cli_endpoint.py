"""How operator commands find a running service and a token (gwms.cli.endpoint)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gwms.cli.endpoint import service_client, service_url
from gwms.errors import GwmsError
from gwms.security import scopes
from gwms.security.layout import ensure_pool_keys


def test_a_missing_endpoint_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(GwmsError, match=r"no running frontend found .*frontend/endpoint.json is missing") as err:
        service_url("frontend", tmp_path)
    assert "--frontend URL" in (err.value.hint or "")


def test_the_url_comes_from_the_endpoint_file_and_the_token_from_the_keys(tmp_path: Path) -> None:
    layout = ensure_pool_keys(tmp_path)
    (tmp_path / "factory").mkdir()
    (tmp_path / "factory" / "endpoint.json").write_text(json.dumps({"url": "http://127.0.0.1:1"}))
    with service_client("factory", None, tmp_path, None, scopes.ADMINISTRATOR) as client:
        assert client.base_url == "http://127.0.0.1:1"
        token = client._policy.token
    claims = layout.verifier().verify(token, [scopes.ADMINISTRATOR])
    assert claims.subject.startswith("admin@")


def test_an_explicit_url_and_token_file_win(tmp_path: Path) -> None:
    token_file = tmp_path / "t.token"
    token_file.write_text("abc\n")
    token_file.chmod(0o600)  # token files must be private
    with service_client("frontend", "http://127.0.0.1:2", tmp_path, token_file, scopes.READ) as client:
        assert client.base_url == "http://127.0.0.1:2" and client._policy.token == "abc"
