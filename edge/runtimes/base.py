"""The Runtime protocol every backend implements, and a base class that enforces the IOSpec.

``infer`` validates each feed (names, dtype, rank, fixed dims, consistent named dims) before the
backend sees it, so a wrong feed is a SpecError naming the input on every backend alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from edge.spec import IOSpec


@runtime_checkable
class Runtime(Protocol):
    """What the stream loop, bench and parity checks program against."""

    backend: str

    @property
    def inputs(self) -> IOSpec: ...

    @property
    def outputs(self) -> IOSpec: ...

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...


class BaseRuntime:
    """Validates feeds against ``io`` and delegates to :meth:`_run`. Context-manager closes."""

    backend = "base"

    def __init__(self, io: IOSpec) -> None:
        self.io = io
        self._closed = False

    @property
    def inputs(self) -> IOSpec:
        return IOSpec(self.io.inputs, ())

    @property
    def outputs(self) -> IOSpec:
        return IOSpec((), self.io.outputs)

    def _check_open(self) -> None:
        """ClosedError (an EdgeError and a RuntimeError) once :meth:`close` ran."""
        if self._closed:
            from edge.errors import ClosedError

            raise ClosedError(f"{self.backend} runtime is closed")

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._check_open()
        self.io.validate_feeds(feeds)
        return self._run({k: feeds[k] for k in self.io.input_names})

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> BaseRuntime:
        self._check_open()  # `with rt:` after close() is refused, not entered
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
