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
