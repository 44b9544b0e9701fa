"""The store/read cycle with the installed wheel, as a user's program: open a vault in the folder
given as argv[1] with a 32-byte raw key, register a profile, store a session, read its access
token back, close; open again and read it again. Also checks that the modules come from the
environment's site-packages (not a checkout) and that the installed files match the wheel's
RECORD. Prints "cycle ok" last and exits 0, or fails with a traceback."""

import base64
import hashlib
import importlib.metadata
import os
import sys
import sysconfig

import tokenvault as tv
from tokenvault_cached import CachedToken

site = os.path.realpath(sysconfig.get_paths()["purelib"])
for module in (tv, sys.modules["tokenvault_cached"]):
    where = os.path.realpath(module.__file__)
    assert where.startswith(site + os.sep), f"{module.__name__} imported from {where}, not {site}"

# Every installed file matches its RECORD entry (RECORD itself has no hash).
dist = importlib.metadata.distribution("tokenvault")
checked = 0
for f in dist.files:
    if f.hash is None:
        continue
    data = f.locate().read_bytes()
    digest = base64.urlsafe_b64encode(hashlib.new(f.hash.mode, data).digest()).rstrip(b"=").decode()
    assert digest == f.hash.value and len(data) == f.size, f"{f} does not match RECORD"
    checked += 1
assert checked >= 3, f"RECORD lists {checked} hashed files"

PROFILE = ('{"preset":"oauth2","name":"backend",'
           '"url":"https://auth.example.com/oauth/token","client_id":"game"}')
TOKEN = "smoke-access-token-python"
path = os.path.join(sys.argv[1], "tokens.db")
key = bytes((i * 7 + 1) % 256 for i in range(32))

vault = tv.TokenVault.open_with_key(path, key)
vault.load_profile_json(PROFILE)
vault.store(tv.NewSession(account="player-1", profile="backend", access_token=TOKEN,
                          refresh_credential="smoke-refresh-token", expires_in_secs=3600))
assert vault.access_token("player-1").token == TOKEN
vault.close()

vault = tv.TokenVault.open_with_key(path, key)
vault.load_profile_json(PROFILE)
assert vault.access_token("player-1").token == TOKEN
with CachedToken(vault, "player-1") as cached:
    assert cached.get() == TOKEN
vault.close()
print(f"cycle ok ({dist.metadata['Name']} {dist.version}, {checked} files match RECORD)")
