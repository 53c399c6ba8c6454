"""What native libraries print while decoding or encoding (libpng, libjpeg, OpenCV's log, FFmpeg), caught.

Why: those libraries write straight to the process's stderr (file descriptor 2), where Python cannot catch
it: a corrupt PNG printed ``libpng error: bad adaptive filter value`` above our one-line error, a JPEG cut
short and closed with an end marker printed ``Corrupt JPEG data: premature end of data segment`` and was then
used as a whole frame, and a video writer that would not open printed FFmpeg's lines. Around one such call,
:func:`caught` points descriptor 2 at a temporary file, and gives back what was written there, so the caller
can turn it into its own message or a refusal. A line that does not look like one of those libraries' (another
thread's, written during the call) is written back to stderr afterwards: delayed by the call, not lost.
One capture at a time (a lock): two interleaved redirections would leave stderr pointing at a closed file.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator

_LOCK = threading.Lock()

#: lines the decoders and encoders write: libpng's, libjpeg's (its warnings and errors), OpenCV's log
#: (``[ERROR:0@0.149] global ...``, ``[ WARN:0@...]``) and FFmpeg's as OpenCV passes them on
NATIVE = re.compile(r"^(libpng (error|warning)|Corrupt JPEG data|Premature end of JPEG|Invalid JPEG|Not a JPEG|"
                    r"Bogus |Unsupported (JPEG|marker)|JPEG|Warning: |\[ ?(ERROR|WARN|INFO|DEBUG)\b|\[[a-z0-9_]+ @ |"
                    r"OpenCV\(|\s*$)")


@contextlib.contextmanager
def caught() -> Iterator[list[str]]:
    """Inside the block, what is written to descriptor 2 is kept; after it the list holds those lines that look
    like a native library's (:data:`NATIVE`), and the others are written back to stderr. Where descriptor 2
    cannot be redirected (none open), the block runs as it is and the list stays empty."""
    lines: list[str] = []
    with _LOCK:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:
            yield lines
            return
        try:
            with tempfile.TemporaryFile() as tmp:
                os.dup2(tmp.fileno(), 2)
                try:
                    yield lines
                finally:
                    os.dup2(saved, 2)
                    tmp.seek(0)
                    text = tmp.read().decode("utf-8", "replace")
                    other = []
                    for ln in text.splitlines():
                        (lines if NATIVE.match(ln) else other).append(ln)
                    lines[:] = [ln for ln in lines if ln.strip()]
                    if other:
                        with contextlib.suppress(OSError):
                            os.write(2, ("\n".join(other) + "\n").encode("utf-8", "replace"))
        finally:
            os.close(saved)
