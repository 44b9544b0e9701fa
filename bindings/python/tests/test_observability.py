"""Open options, metrics and log routing through the uniffi Python bindings, against the
reference server of seed 001 and real vault files."""

import os
import threading
import time

import pytest

import tokenvault as tv
from conftest import TEST_KEY


def test_open_options_apply_and_invalid_values_create_nothing(tmpdir_path):
    path = os.path.join(tmpdir_path, "v.db")
    for bad in [
        tv.OpenOptions(refresh_point=0.99),
        tv.OpenOptions(jitter=-0.1),
        tv.OpenOptions(min_ttl_cap=1.5),
        tv.OpenOptions(expiry_margin_ms=3_600_001),
        tv.OpenOptions(busy_timeout_ms=600_001),
    ]:
        with pytest.raises(tv.TokenVaultError.InvalidInput):
            tv.TokenVault.open_with_key(path, TEST_KEY, bad)
        assert not os.path.exists(path)

    # Refresh point 5 % of a 20 s token: due after 1 s (with the defaults, after 15 s).
    v = tv.TokenVault.open_with_key(path, TEST_KEY, tv.OpenOptions(refresh_point=0.05, jitter=0.0, busy_timeout_ms=1000))
    v.register_preset(tv.Preset.OAUTH2, "backend", "http://127.0.0.1:9/token", None)
    v.store(tv.NewSession(account="p", profile="backend", access_token="a" * 40, refresh_credential="r" * 40, expires_in_secs=20))
    assert v.session_info("p").state == tv.SessionState.FRESH
    time.sleep(1.2)
    assert v.session_info("p").state == tv.SessionState.REFRESH_DUE
    v.close()


def test_metrics_count_hits_refreshes_and_failures(server_factory, vault):
    server = server_factory("001")
    server.register(vault)
    assert vault.metrics().cached_hits == 0
    server.login_and_store(vault, "player")
    for _ in range(10):
        vault.access_token("player")
    vault.force_refresh("player")
    m = vault.metrics()
    assert m.cached_hits == 10
    assert (m.refreshes_started, m.refreshes_succeeded, m.refreshes_failed) == (1, 1, 0)
    assert m.transport_requests == 1 and m.response_bytes > 100
    assert 0 < m.transport_latency_p50_us <= m.transport_latency_p99_us

    # A credential the server does not know: refused, counted under its code.
    vault.store(tv.NewSession(account="stranger", profile="backend", access_token="x" * 40, refresh_credential="y" * 40))
    with pytest.raises(tv.TokenVaultError.ReauthenticationRequired):
        vault.force_refresh("stranger")
    m = vault.metrics()
    assert m.refreshes_failed == 1
    assert [(f.code, f.name, f.count) for f in m.refreshes_failed_by_code] == [(1, "reauthentication_required", 1)]
    assert "player" not in repr(m) and "stranger" not in repr(m)


class Lines(tv.LogListener):
    def __init__(self):
        self.lock = threading.Lock()
        self.lines = []

    def on_log(self, level, target, message):
        with self.lock:
            self.lines.append((level, target, message))


def test_log_lines_reach_the_listener_without_secrets(server_factory, vault):
    server = server_factory("001")
    server.register(vault)
    lines = Lines()
    try:
        tv.set_log_listener(tv.LogLevel.TRACE, lines)
        access, refresh = server.login("player-0c4f")
        vault.store(tv.NewSession(account="player-0c4f", profile="backend", access_token=access, refresh_credential=refresh))
        rotated = vault.force_refresh("player-0c4f").token
        vault.remove("player-0c4f")
        assert len(lines.lines) >= 3, lines.lines
        assert any(level == tv.LogLevel.DEBUG for level, _, _ in lines.lines)
        for _, target, message in lines.lines:
            assert target.startswith("tokenvault")
            for secret in (access, refresh, rotated, "player-0c4f"):
                assert secret not in message

        # Warnings and errors only.
        tv.set_log_listener(tv.LogLevel.WARN, lines)
        lines.lines.clear()
        server.login_and_store(vault, "second")
        vault.force_refresh("second")
        assert all(level in (tv.LogLevel.WARN, tv.LogLevel.ERROR) for level, _, _ in lines.lines)
    finally:
        tv.set_log_listener(tv.LogLevel.TRACE, None)
    lines.lines.clear()
    vault.force_refresh("second")
    assert lines.lines == []


def test_store_response_with_the_servers_own_answer_and_an_epoch_expiry(server_factory, vault):
    import json
    import urllib.request

    server = server_factory("001")
    server.register(vault)
    req = urllib.request.Request(
        server.base + "/test/login",
        data=json.dumps({"user": "ada", "answer": "dialect"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        body, date = resp.read().decode(), resp.headers["Date"]
    info = vault.store_response("ada", "backend", body, date_header=date)
    assert info.has_refresh_credential and 50_000 < info.access_remaining_ms <= 60_000
    assert vault.access_token("ada").token == json.loads(body)["data"]["accessToken"]
    rotated = vault.force_refresh("ada")
    assert server.protected_status(rotated.token) == 200
    with pytest.raises(tv.TokenVaultError.Protocol):
        vault.store_response("bob", "backend", '{"success":false,"error":{"type":"AUTHENTICATION"}}')
    with pytest.raises(tv.TokenVaultError.InvalidInput):
        vault.store_response("bob", "backend", body, refresh_credential="extra")
    with pytest.raises(tv.TokenVaultError.NotFound):
        vault.session_info("bob")

    # expires_in as seed 003 writes it: a Java timestamp (epoch ms), 2 s ahead; refreshed at ~75 %.
    access, refresh = server.login("eve")
    info = vault.store(
        tv.NewSession(account="eve", profile="backend", access_token=access, refresh_credential=refresh,
                      expires_in_secs=int(time.time() * 1000) + 2000)
    )
    # Server time is the JWT's iat (whole seconds): up to 1 s behind the device.
    assert 1000 < info.access_remaining_ms <= 3000
    before = server.stat("refresh_successes")
    time.sleep(2.5)  # due by then whatever the iat rounding (refresh point 75 % ± 5 %)
    token = vault.access_token("eve")
    assert token.generation > info.generation and token.token != access
    assert server.stat("refresh_successes") == before + 1


def test_logout_with_revoke_reaches_the_servers_rfc7009_endpoint(server_factory, vault):
    server = server_factory("001")
    vault.load_profile_json(
        '{"preset":"rotating-success-envelope","name":"backend","url":"%s","revocation_url":"/oauth/revoke"}'
        % server.refresh_url
    )
    server.login_and_store(vault, "ada")
    server.login_and_store(vault, "bob")
    assert vault.remove("bob") is True  # local only
    assert vault.remove("ada", revoke=True) is True
    with pytest.raises(tv.TokenVaultError.NotFound):
        vault.session_info("ada")
    deadline = time.time() + 10
    while vault.pending_revocations().pending and time.time() < deadline:
        time.sleep(0.02)
    assert vault.pending_revocations() == tv.RevocationQueue(pending=[], dropped=0)
    assert server.stat("rfc7009_revocations") == 1 and server.stat("families_revoked") == 1
    assert vault.send_revocations() == tv.RevocationReport(revoked=0, refused=0, retry_later=0, waiting_for_profile=0)
