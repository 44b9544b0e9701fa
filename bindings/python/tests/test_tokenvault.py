"""The whole cycle of the uniffi Python bindings against the seed dialects' reference servers."""

import os
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import tokenvault as tv
from conftest import TEST_KEY, EventLog, UrllibTransport
from tokenvault_cached import CachedToken


@pytest.mark.parametrize("transport", ["built-in", "python"])
@pytest.mark.parametrize("dialect", ["000", "001", "002"])
def test_store_read_refresh_force_report_remove(server_factory, vault, dialect, transport):
    server = server_factory(dialect, access_ttl_ms=2_000)
    python_transport = UrllibTransport()
    if transport == "python":
        vault.set_transport(python_transport)
    log = EventLog()
    vault.set_observer(log)
    server.register(vault)
    server.login_and_store(vault, "player")

    first = vault.access_token("player")
    assert server.protected_status(first.token) == 200
    assert vault.access_token("player") == first
    assert server.stat("refresh_requests") == 0

    time.sleep(2.1)  # due
    second = vault.access_token("player")
    assert second.generation > first.generation and second.token != first.token
    assert server.protected_status(second.token) == 200
    assert server.stat("refresh_successes") == 1
    ev = log.wait_for(lambda e: isinstance(e, tv.VaultEvent.TOKEN_REFRESHED))
    assert ev.account == "player" and ev.generation == second.generation

    third = vault.force_refresh("player")
    assert third.generation > second.generation
    n = server.stat("refresh_requests")
    assert vault.report_rejected("player", second.token) == third
    assert server.stat("refresh_requests") == n
    fourth = vault.report_rejected("player", third.token)
    assert fourth.generation > third.generation
    if transport == "python":
        assert python_transport.calls == 3

    info = vault.session_info("player")
    assert info.generation == fourth.generation
    assert info.state == tv.SessionState.FRESH
    assert info.refresh_count == 3 and info.has_refresh_credential
    assert vault.list_accounts() == ["player"] and vault.session_count() == 1
    assert vault.check_integrity()

    assert vault.remove("player")
    log.wait_for(lambda e: isinstance(e, tv.VaultEvent.SESSION_REMOVED) and e.account == "player")
    with pytest.raises(tv.TokenVaultError.NotFound):
        vault.access_token("player")


@pytest.mark.parametrize("dialect", ["000", "001", "002"])
def test_two_step_refresh(server_factory, vault, dialect):
    server = server_factory(dialect)
    server.register(vault)
    server.login_and_store(vault, "player")
    before = vault.access_token("player")
    assert vault.begin_refresh("player", False) == tv.RefreshStep.FRESH(before)

    step = vault.begin_refresh("player", True)
    assert isinstance(step, tv.RefreshStep.SEND)
    assert vault.begin_refresh("player", True) == tv.RefreshStep.IN_FLIGHT()
    response = UrllibTransport().send(step.request)
    after = vault.finish_refresh(step.attempt, response)
    assert after.generation > before.generation
    assert server.protected_status(after.token) == 200

    again = vault.begin_refresh("player", True)
    with pytest.raises(tv.TokenVaultError.Transient):
        vault.fail_refresh(again.attempt, tv.TransportError.Connect("no route"))
    assert vault.access_token("player") == after
    with pytest.raises(tv.TokenVaultError.InvalidInput):
        vault.finish_refresh(again.attempt, response)


def check(excinfo, code, name):
    e = excinfo.value
    assert e.code == code, e
    assert tv.error_code_name(code) == name
    assert "sekrit" not in str(e)


def test_local_errors(tmpdir_path):
    path = os.path.join(tmpdir_path, "v.db")
    v = tv.TokenVault.open_with_key(path, TEST_KEY)
    with pytest.raises(tv.TokenVaultError.NotFound) as e:
        v.access_token("nobody")
    check(e, 7, "not_found")
    with pytest.raises(tv.TokenVaultError.InvalidInput) as e:
        v.load_profile_json("{")
    check(e, 8, "invalid_input")
    v.close()
    with pytest.raises(tv.TokenVaultError.Closed) as e:
        v.list_accounts()
    check(e, 13, "closed")
    with pytest.raises(tv.TokenVaultError.WrongKey) as e:
        tv.TokenVault.open_with_key(path, bytes(32))
    check(e, 5, "wrong_key")
    with pytest.raises(tv.TokenVaultError.InvalidInput) as e:
        tv.TokenVault.open_with_key(path, bytes(31))
    check(e, 8, "invalid_input")

    with open(path, "r+b") as f:  # user_version (offset 60 of the SQLite header) = 99
        f.seek(60)
        f.write(struct.pack(">i", 99))
    with pytest.raises(tv.TokenVaultError.SchemaTooNew) as e:
        tv.TokenVault.open_with_key(path, TEST_KEY)
    check(e, 11, "schema_too_new")
    assert e.value.found == 99

    junk = os.path.join(tmpdir_path, "junk.db")
    with open(junk, "wb") as f:
        f.write(b"Z" * 8192)
    with pytest.raises(tv.TokenVaultError.Corrupt) as e:
        tv.TokenVault.open_with_key(junk, TEST_KEY)
    check(e, 6, "corrupt")
    with pytest.raises(tv.TokenVaultError.StorageUnavailable) as e:
        tv.TokenVault.open_with_key(os.path.join(tmpdir_path, "no", "such", "v.db"), TEST_KEY)
    check(e, 4, "storage_unavailable")


def test_panic_comes_back_as_internal():
    with pytest.raises(tv.TokenVaultError.Internal) as e:
        tv.debug_trigger_panic()
    check(e, 10, "internal")


def test_server_errors(server_factory, vault):
    server = server_factory("001")
    log = EventLog()
    vault.set_observer(log)
    server.register(vault)
    server.login_and_store(vault, "player")

    server.fault({"fault": "status", "status": 503})
    with pytest.raises(tv.TokenVaultError.Transient) as e:
        vault.force_refresh("player")
    check(e, 2, "transient")
    server.fault({"fault": "garbage"})
    with pytest.raises(tv.TokenVaultError.Protocol) as e:
        vault.force_refresh("player")
    check(e, 9, "protocol")
    server.fault({"fault": "lose_response"})
    with pytest.raises(tv.TokenVaultError.Transient):
        vault.force_refresh("player")
    with pytest.raises(tv.TokenVaultError.RefreshOutcomeUnknown) as e:
        vault.force_refresh("player")
    check(e, 12, "refresh_outcome_unknown")

    server.login_and_store(vault, "slow")
    server.fault({"fault": "throttle", "retry_after_secs": 7})
    with pytest.raises(tv.TokenVaultError.Throttled) as e:
        vault.force_refresh("slow")
    check(e, 3, "throttled")
    assert e.value.retry_after_ms == 7000

    server.login_and_store(vault, "other")
    assert server.revoke(vault.access_token("other").token)
    with pytest.raises(tv.TokenVaultError.ReauthenticationRequired) as e:
        vault.force_refresh("other")
    check(e, 1, "reauthentication_required")
    assert vault.session_info("other").state == tv.SessionState.REAUTHENTICATION_REQUIRED
    log.wait_for(lambda e: isinstance(e, tv.VaultEvent.SESSION_EXPIRED) and e.account == "other")
    assert vault.list_accounts() == ["other", "player", "slow"]


def _store_local(vault, account="player", token="a" * 900):
    vault.register_preset(tv.Preset.OAUTH2, "backend", "http://127.0.0.1:9/token", None)
    vault.store(tv.NewSession(account=account, profile="backend", access_token=token, expires_in_secs=3600))


def test_use_after_close_and_watches(tmpdir_path):
    v = tv.TokenVault.open_with_key(os.path.join(tmpdir_path, "v.db"), TEST_KEY)
    _store_local(v)
    watch = v.watch("player")
    # expires_in 0 means "not given" on every surface (the core decides): the default lifetime.
    info = v.store(tv.NewSession(account="zero", profile="backend", access_token="z" * 40, expires_in_secs=0))
    assert info.access_remaining_ms > 60_000
    v.close()
    v.close()
    assert v.is_closed()
    # A closed vault refuses configuration, as the C ABI does (the core decides).
    with pytest.raises(tv.TokenVaultError.Closed):
        v.set_observer(None)
    with pytest.raises(tv.TokenVaultError.Closed):
        v.set_transport(UrllibTransport())
    with pytest.raises(tv.TokenVaultError.Closed):
        v.access_token("player")
    with pytest.raises(tv.TokenVaultError.Closed):
        watch.current_generation()
    del v, watch
    # The file is closed for real: it opens again.
    v2 = tv.TokenVault.open_with_key(os.path.join(tmpdir_path, "v.db"), TEST_KEY)
    assert v2.list_accounts() == ["player", "zero"]
    v2.close()


def test_passphrase_and_rekey(tmpdir_path):
    path = os.path.join(tmpdir_path, "v.db")
    v = tv.TokenVault.open_with_passphrase(path, "correct horse battery staple")
    _store_local(v)
    v.rekey_with_key(TEST_KEY)
    v.close()
    # Until the first open with the new key, the replaced passphrase still opens the vault.
    tv.TokenVault.open_with_passphrase(path, "correct horse battery staple").close()
    v = tv.TokenVault.open_with_key(path, TEST_KEY)
    assert v.list_accounts() == ["player"]
    v.close()
    with pytest.raises(tv.TokenVaultError.WrongKey):
        tv.TokenVault.open_with_passphrase(path, "correct horse battery staple")


class FileAnchor(tv.StateAnchor):
    """The app's anchor: a counter kept outside the vault file."""

    def __init__(self, path):
        self.path = path
        self.fail = False

    def load(self):
        if self.fail:
            raise tv.AnchorError.Failed("keychain locked")
        return int(open(self.path).read()) if os.path.exists(self.path) else None

    def store(self, counter):
        with open(self.path, "w") as f:
            f.write(str(counter))


def test_anchor_refuses_a_restored_old_copy(tmpdir_path):
    path = os.path.join(tmpdir_path, "v.db")
    backup = os.path.join(tmpdir_path, "backup.db")
    anchor = FileAnchor(os.path.join(tmpdir_path, "anchor"))
    v = tv.TokenVault.open_with_key_anchored(path, TEST_KEY, anchor)
    _store_local(v, token="first")
    v.close()
    del v
    with open(path, "rb") as f, open(backup, "wb") as g:
        g.write(f.read())
    v = tv.TokenVault.open_with_key_anchored(path, TEST_KEY, anchor)
    _store_local(v, token="second")
    v.close()
    del v
    with open(backup, "rb") as f:
        old = f.read()
    with open(path, "wb") as g:
        g.write(old)
    with pytest.raises(tv.TokenVaultError.Corrupt):
        tv.TokenVault.open_with_key_anchored(path, TEST_KEY, anchor)
    assert open(path, "rb").read() == old
    anchor.fail = True
    with pytest.raises(tv.TokenVaultError.StorageUnavailable):
        tv.TokenVault.open_with_key_anchored(path, TEST_KEY, anchor)
    # Without an anchor an old copy of the whole file is consistent: it opens.
    v = tv.TokenVault.open_with_key(path, TEST_KEY)
    v.register_preset(tv.Preset.OAUTH2, "backend", "http://127.0.0.1:9/token", None)
    assert v.access_token("player").token == "first"
    v.close()


def test_session_moves_to_a_new_endpoint_only_when_asked(server_factory, vault):
    server = server_factory("001")
    server.register(vault)
    server.login_and_store(vault, "player")
    vault.register_preset(tv.Preset.OAUTH2, "backend", "http://127.0.0.1:9/token", None)
    with pytest.raises(tv.TokenVaultError.InvalidInput):
        vault.force_refresh("player")
    assert server.stat("refresh_requests") == 0
    server.register(vault, name="other")
    vault.move_session("player", "other")
    vault.force_refresh("player")
    assert server.stat("refresh_successes") == 1


def test_utf8_round_trip(tmpdir_path):
    v = tv.TokenVault.open_with_key(os.path.join(tmpdir_path, "ü-目录.db"), TEST_KEY)
    v.register_preset(tv.Preset.OAUTH2, "backend", "http://127.0.0.1:9/token", None)
    account = "Spieler-Ünïcødé-玩家-🎮"
    v.store(tv.NewSession(account=account, profile="backend", access_token="tok", hints={"name": "Zoë 🦊"}))
    assert v.list_accounts() == [account]
    info = v.session_info(account)
    assert info.account == account and info.hints == {"name": "Zoë 🦊"}
    v.close()


def test_profile_from_json(vault):
    name = vault.load_profile_json(
        '{"preset":"keycloak","name":"sso","url":"https://sso.example.com/token","client_id":"game"}'
    )
    assert name == "sso"
    vault.store(tv.NewSession(account="player", profile="sso", access_token="tok", refresh_credential="r", offline=True))
    info = vault.session_info("player")
    assert info.profile == "sso" and info.offline and info.session_remaining_ms is None


def test_records_print_no_secrets(server_factory, vault):
    """str(), repr(), f-strings and logging of every record that holds a secret or an account."""
    import logging

    server = server_factory("001")
    server.register(vault)
    access, refresh = server.login("acct-sekrit")
    records = [
        tv.AccessToken(token="sekrit", generation=1),
        tv.HttpHeader(name="Authorization", value="Bearer sekrit"),
        tv.NewSession(account="acct-sekrit", profile="p", access_token="sekrit", refresh_credential="sekrit"),
        tv.HttpResponse(status=200, headers=[tv.HttpHeader(name="Set-Cookie", value="sekrit")], body=b"sekrit"),
        tv.VaultEvent.SESSION_REMOVED(account="acct-sekrit"),
        tv.PendingRevocation(account="acct-sekrit", profile="p", queued_at_ms=1, attempts=0),
        tv.RevocationQueue(pending=[tv.PendingRevocation(account="acct-sekrit", profile="p", queued_at_ms=1, attempts=0)], dropped=0),
    ]
    vault.store(tv.NewSession(account="acct-sekrit", profile="backend", access_token=access, refresh_credential=refresh))
    records.append(vault.session_info("acct-sekrit"))
    token = vault.access_token("acct-sekrit")
    records.append(token)
    step = vault.begin_refresh("acct-sekrit", True)
    records += [step, step.request]
    secrets = ["sekrit", access, refresh, token.token]
    texts = []
    for r in records:
        texts += [str(r), repr(r), f"{r}", "%s" % (r,)]
    for t in texts:
        for secret in secrets:
            assert secret not in t, t
    logging.getLogger("tokenvault-test").warning("a record: %s", records[2])


def test_cached_token(vault):
    _store_local(vault)
    with CachedToken(vault, "player") as cached:
        first = cached.get()
        assert first == "a" * 900
        assert cached.get() is first  # same generation: the same str object
        vault.store(tv.NewSession(account="player", profile="backend", access_token="b" * 900, expires_in_secs=3600))
        second = cached.get()
        assert second == "b" * 900 and cached.get() is second
        vault.remove("player")
        with pytest.raises(tv.TokenVaultError.NotFound):
            cached.get()
    with pytest.raises(tv.TokenVaultError.Closed):
        cached.get()


def test_threads_reading_an_expired_token_cause_one_refresh(server_factory, vault):
    server = server_factory("002")
    vault.set_transport(UrllibTransport())
    server.register(vault)
    # expires_in 1 s, then 1.1 s pass: the stored token has expired (0 would mean "not given").
    server.login_and_store(vault, "player", expires_in_secs=1)
    time.sleep(1.1)
    barrier = threading.Barrier(50)

    def read(_):
        barrier.wait()
        return vault.access_token("player")

    with ThreadPoolExecutor(max_workers=50) as pool:
        tokens = list(pool.map(read, range(50)))
    assert server.stat("refresh_requests") == 1
    assert len({t.generation for t in tokens}) == 1
    assert server.protected_status(tokens[0].token) == 200
