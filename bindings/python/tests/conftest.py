"""Fixtures for the Python tests of the uniffi bindings: reference servers, vaults, a transport."""

import json
import os
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request

import pytest

import tokenvault as tv

TEST_KEY = bytes((i * 7 + 1) % 256 for i in range(32))

REFRESH_PATHS = {
    "000": "/v2/client/auth/refresh-token",
    "001": "/v2/Auth/RefreshToken",
    "002": "/User/RefreshToken",
}
PRESETS = {
    "000": tv.Preset.ENTITY_TOKEN_ENVELOPE,
    "001": tv.Preset.ROTATING_SUCCESS_ENVELOPE,
    "002": tv.Preset.ROTATING_BEARER_VERSIONED,
}


class ReferenceServer:
    """The reference server of one seed dialect (tests/testkit), as a child process."""

    def __init__(self, dialect, access_ttl_ms=60_000):
        exe = os.environ["TOKENVAULT_REFERENCE_SERVER"]
        self.dialect = dialect
        self.proc = subprocess.Popen(
            [exe, "--dialect", dialect, "--access-ttl-ms", str(access_ttl_ms)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        assert line.startswith("LISTENING "), line
        self.base = f"http://127.0.0.1:{int(line.split()[1])}"
        self.refresh_url = self.base + REFRESH_PATHS[dialect]

    def register(self, vault, name="backend"):
        vault.register_preset(PRESETS[self.dialect], name, self.refresh_url, '{"api_key":"test-api-key"}')

    def _call(self, method, path, body=None, headers=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers or {})
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def login(self, user):
        status, body = self._call("POST", "/test/login", {"user": user})
        assert status == 200
        doc = json.loads(body)
        return doc["accessToken"], doc["refreshCredential"]

    def login_and_store(self, vault, account, profile="backend", expires_in_secs=None):
        access, refresh = self.login(account)
        vault.store(
            tv.NewSession(
                account=account,
                profile=profile,
                access_token=access,
                refresh_credential=refresh,
                expires_in_secs=expires_in_secs,
            )
        )

    def stat(self, name):
        return json.loads(self._call("GET", "/test/stats")[1])[name]

    def fault(self, doc):
        assert self._call("POST", "/test/fault", doc)[0] == 200

    def revoke(self, token):
        return json.loads(self._call("POST", "/test/revoke", {"token": token})[1])["revoked"]

    def protected_status(self, access_token):
        return self._call("GET", "/protected", headers={"Authorization": f"Bearer {access_token}"})[0]

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def server_factory():
    servers = []

    def make(dialect, access_ttl_ms=60_000):
        s = ReferenceServer(dialect, access_ttl_ms)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


@pytest.fixture
def tmpdir_path():
    with tempfile.TemporaryDirectory(prefix="tokenvault-py") as d:
        yield d


@pytest.fixture
def vault(tmpdir_path):
    v = tv.TokenVault.open_with_key(os.path.join(tmpdir_path, "v.db"), TEST_KEY)
    yield v
    v.close()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class UrllibTransport(tv.HttpTransport):
    """A refresh transport on urllib: no redirects, the request's timeout and size cap."""

    def __init__(self):
        self.opener = urllib.request.build_opener(_NoRedirect())
        self.calls = 0

    def send(self, request):
        self.calls += 1
        req = urllib.request.Request(request.url, data=bytes(request.body), method=request.method)
        for h in request.headers:
            req.add_header(h.name, h.value)
        try:
            resp = self.opener.open(req, timeout=max(request.timeout_ms, 1) / 1000)
        except urllib.error.HTTPError as e:
            resp = e
        except TimeoutError:
            raise tv.TransportError.Timeout("timed out")
        except urllib.error.URLError as e:
            raise tv.TransportError.Connect(type(e.reason).__name__)
        except OSError as e:
            raise tv.TransportError.Io(type(e).__name__)
        with resp:
            body = resp.read(request.max_response_bytes + 1)
            if len(body) > request.max_response_bytes:
                raise tv.TransportError.TooLarge("response too large")
            headers = [tv.HttpHeader(name=k, value=v) for k, v in resp.headers.items()]
            return tv.HttpResponse(status=resp.getcode(), headers=headers, body=body)


class EventLog(tv.VaultObserver):
    def __init__(self):
        import queue

        self.events = queue.Queue()

    def on_event(self, event):
        self.events.put(event)

    def wait_for(self, predicate, timeout=5.0):
        import queue
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                e = self.events.get(timeout=0.05)
            except queue.Empty:
                continue
            if predicate(e):
                return e
        raise AssertionError("no matching event")


OIDC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "tests", "oidc")


class OidcProvider:
    """panva's oidc-provider (tests/oidc/server.mjs, `npm ci --prefix tests/oidc` first), as a
    child process: it prints `LISTENING <port>` and exits when its stdin closes."""

    CLIENT_ID = "tokenvault-test"

    def __init__(self, alg="ES256"):
        if not os.path.isdir(os.path.join(OIDC_DIR, "node_modules", "oidc-provider")):
            raise AssertionError("oidc-provider is not installed: run `npm ci --prefix tests/oidc`")
        self.proc = subprocess.Popen(
            [os.environ.get("TOKENVAULT_NODE", "node"), "server.mjs", "--alg", alg],
            cwd=OIDC_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line = self.proc.stdout.readline()
        assert line.startswith("LISTENING "), line
        self.issuer = f"http://127.0.0.1:{int(line.split()[1])}"
        self.token_endpoint = self.issuer + "/token"

    def profile_json(self, name="op", **oidc):
        return json.dumps(
            {
                "preset": "oauth2",
                "name": name,
                "url": self.token_endpoint,
                "client_id": self.CLIENT_ID,
                "oidc": {"issuer": self.issuer, **oidc},
            }
        )

    def _post(self, path, form):
        data = urllib.parse.urlencode(form).encode()
        req = urllib.request.Request(self.issuer + path, data=data, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def bootstrap(self, account):
        status, body = self._post(
            "/token",
            {"grant_type": "urn:tokenvault:test:bootstrap", "client_id": self.CLIENT_ID, "account": account},
        )
        assert status == 200, body
        return json.loads(body)

    def next_sub(self, sub):
        assert self._post("/test/next-sub?sub=" + sub, {})[0] == 204

    def stats(self):
        with urllib.request.urlopen(self.issuer + "/test/stats", timeout=10) as resp:
            return json.loads(resp.read())

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def oidc_factory():
    servers = []

    def make(alg="ES256"):
        s = OidcProvider(alg)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()
