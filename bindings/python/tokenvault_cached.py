"""The cached token read for Python, on top of the generated ``tokenvault`` module.

A plain ``vault.access_token(account)`` costs ~10 µs from Python (uniffi's ctypes marshalling of
the call status and of a ~1 KB string). :class:`CachedToken` keeps the last token string on the
Python side and, on each :meth:`CachedToken.get`, asks the native core only for the generation of
the valid token, through the plain C function ``tokenvault_probe_generation`` (an integer in and
out). The string crosses again only when the core hands out a different token. Every decision --
is the token fresh, must it be refreshed -- is still the core's: ``get`` runs the core's
``access_token``, which refreshes when due.
"""

import ctypes

import tokenvault as _tv

# The library the generated module loaded (its private handle: both files are generated or
# maintained together in this repository).
_probe_generation = _tv._UniffiLib.tokenvault_probe_generation
_probe_generation.argtypes = (ctypes.c_uint64, ctypes.c_uint64)
_probe_generation.restype = ctypes.c_int64

__all__ = ["CachedToken"]


class CachedToken:
    """The cached read of one account's token. Thread-safe; use it as a context manager."""

    def __init__(self, vault: _tv.TokenVault, account: str):
        self._watch = vault.watch(account)
        self._probe_id = self._watch.probe_id()
        self._held = None  # (generation, token)

    def get(self) -> str:
        """A valid access token; raises ``TokenVaultError`` exactly as ``access_token`` does."""
        held = self._held
        generation = _probe_generation(self._probe_id, 0 if held is None else held[0])
        if generation < 0:
            watch = self._watch
            if watch is None:
                raise _tv.TokenVaultError.Closed(13, "the cached token was closed")
            # The typed error of this failure, recorded on this thread by the probe.
            watch.raise_probe_failure()
            raise _tv.TokenVaultError.Internal(-generation, "the probe failed without an error")
        if held is not None and held[0] == generation:
            return held[1]
        fresh = self._watch.token()
        self._held = (fresh.generation, fresh.token)
        return fresh.token

    @property
    def generation(self) -> int:
        """The generation of the token ``get`` returned last (0 before the first call)."""
        held = self._held
        return 0 if held is None else held[0]

    def close(self) -> None:
        """Forget the cached string and release the native watch."""
        self._held = None
        self._watch = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"CachedToken(generation {self.generation})"
