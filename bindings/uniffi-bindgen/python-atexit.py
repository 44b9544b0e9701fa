

# ----- appended by bindings/uniffi-bindgen/generate.sh (bindings/uniffi-bindgen/python-atexit.py)
# Close every vault before the interpreter finalizes: a vault's event thread (an observer) or
# log routing calling into Python while it finalizes would be ended by the interpreter with a
# forced unwind, which aborts the whole process. atexit runs before finalization starts, and
# the call releases the GIL, so the event in progress completes and the thread ends normally.
import atexit as _tokenvault_atexit

_tokenvault_atexit.register(close_all_vaults)
