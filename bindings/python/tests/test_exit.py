"""A program that exits without closing its vault, while the vault's event thread is inside the
program's observer, exits cleanly (it used to abort: SIGABRT, "FATAL: exception not rethrown")."""

import os
import subprocess
import sys
import textwrap

PROGRAM = textwrap.dedent(
    """
    import os, sys, tempfile, time
    sys.path.insert(0, {tests!r})
    import tokenvault as tv
    from conftest import ReferenceServer, TEST_KEY

    class SlowObserver(tv.VaultObserver):
        def on_event(self, event):
            time.sleep(0.05)

    class Lines(tv.LogListener):
        def on_log(self, level, target, message):
            pass

    tv.set_log_listener(tv.LogLevel.TRACE, Lines())
    server = ReferenceServer("001")
    vault = tv.TokenVault.open_with_key(os.path.join(tempfile.mkdtemp(), "v.db"), TEST_KEY)
    vault.set_observer(SlowObserver())
    server.register(vault)
    server.login_and_store(vault, "player")
    for _ in range(3):
        vault.force_refresh("player")
    server.proc.stdin.close()
    print("exiting without close", flush=True)
    """
)


def test_exiting_mid_event_without_close_is_clean():
    program = PROGRAM.format(tests=os.path.dirname(os.path.abspath(__file__)))
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
        assert "exiting without close" in done.stdout
        assert "FATAL" not in done.stderr
