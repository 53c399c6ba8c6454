"""edge.muted: one thread's prints silenced, the rest of the process's kept (edge.export and NNCF use it)."""

from __future__ import annotations

import io
import sys
import threading

from edge.muted import muted


def test_only_the_muted_thread_is_silenced_and_the_streams_come_back(monkeypatch) -> None:
    """A review: edge.export swapped sys.stdout/sys.stderr for the whole process (contextlib.redirect_stdout), and a
    service's other threads lost 497 of 785 lines printed meanwhile."""
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    inside, go_on = threading.Event(), threading.Event()

    def other() -> None:
        inside.wait(5)
        for i in range(50):
            print(f"other {i}")
            print(f"other err {i}", file=sys.stderr)
        go_on.set()

    t = threading.Thread(target=other)
    t.start()
    with muted():
        print("exporter progress")
        print("a traced graph", file=sys.stderr)
        with muted(stderr=False):  # nested (NNCF inside an export): still this thread's alone
            print("a progress bar")
        inside.set()
        go_on.wait(5)
        print("more progress")
    t.join(5)
    print("after")
    assert sys.stdout is out and sys.stderr is err
    assert out.getvalue().splitlines() == [f"other {i}" for i in range(50)] + ["after"]
    assert err.getvalue().splitlines() == [f"other err {i}" for i in range(50)]
