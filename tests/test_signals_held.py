"""signals_held: Ctrl-C and SIGTERM wait until files committed together are all written, then take effect."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from edge.signals_held import signals_held


@pytest.fixture
def python_ctrl_c() -> Iterator[None]:
    """Python's own Ctrl-C handler for the test (a pytest-xdist worker runs with SIGINT ignored), restored after; the
    test checks signals_held put it back."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)


def _ctrl_c_held() -> None:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.05)  # the handler has run by now: with the default one the next line was never reached


def test_a_signal_in_the_block_takes_effect_after_it(python_ctrl_c: None) -> None:
    done = []
    with pytest.raises(KeyboardInterrupt), signals_held():
        _ctrl_c_held()
        done.append("both files written")
    assert done == ["both files written"]


def test_the_blocks_own_error_is_not_replaced_by_a_held_signal(python_ctrl_c: None) -> None:
    """A write that fails (a full disk) while a Ctrl-C is held ends with its own error, not "interrupted"."""
    with pytest.raises(OSError, match="No space left"), signals_held():
        _ctrl_c_held()
        raise OSError(28, "No space left on device")


def test_no_signal_no_effect_and_an_ignored_signal_stays_ignored() -> None:
    old = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with signals_held():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, old)


def test_outside_the_main_thread_it_holds_nothing_and_does_not_fail() -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with signals_held():
                pass
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert errors == []
