"""What native libraries print while decoding or encoding (libpng, libjpeg, OpenCV's log, FFmpeg), caught.

Why: those libraries write straight to the process's stderr (file descriptor 2), where Python cannot catch
it: a corrupt PNG printed ``libpng error: bad adaptive filter value`` above our one-line error, a JPEG cut
short and closed with an end marker printed ``Corrupt JPEG data: premature end of data segment`` and was then
used as a whole frame, and a video writer that would not open printed FFmpeg's lines. Around one such call,
:func:`caught` points descriptor 2 at a temporary file, and gives back what was written there, so the caller
can turn it into its own message or a refusal. What does not look like one of those libraries' lines (another
thread's, written during the call: ``edge run --live``'s status line, rewritten in place with ``\\r``) is
written back to stderr afterwards exactly as it was written: delayed by the call, not lost or reshaped.
One capture at a time per process (a lock; re-entrant, so a capture inside a capture hands its other lines
to the outer one): two interleaved redirections would leave stderr pointing at a closed file.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator

_LOCK = threading.RLock()

#: lines the decoders and encoders write: libpng's, libjpeg's (its warnings and errors), OpenCV's log
#: (``[ERROR:0@0.149] global ...``, ``[ WARN:0@...]``, ``OpenCV: FFMPEG: ...``, its imread check quoted as
#: ``> Internal imread issue:`` with ``> ...`` lines after it) and FFmpeg's own (``[libvpx-vp9 @ 0x...] ...``)
NATIVE = re.compile(r"^(libpng (error|warning)|Corrupt JPEG data|Premature end of JPEG|Invalid JPEG|Not a JPEG|"
                    r"Bogus |Unsupported (JPEG|marker)|JPEG|Warning: |\[ ?(ERROR|WARN|INFO|DEBUG)\b|"
                    r"\[[\w.-]+ @ |OpenCV(\(|: )|> Internal )")


@contextlib.contextmanager
def caught() -> Iterator[list[str]]:
    """Inside the block, what is written to descriptor 2 is kept; after it the list holds the lines that look
    like a native library's (:data:`NATIVE`; a blank line right after one counts as its), and everything else
    is written back to stderr byte for byte. Where descriptor 2 cannot be redirected (none open), the block
    runs as it is and the list stays empty."""
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
                    other = _sort(tmp.read().decode("utf-8", "replace"), lines)
                    if other:
                        with contextlib.suppress(OSError):
                            os.write(2, other.encode("utf-8", "replace"))
        finally:
            os.close(saved)


def _sort(text: str, native: list[str]) -> str:
    """Split ``text`` into pieces each ending in ``\\n`` or ``\\r`` (a status line rewritten in place ends in
    ``\\r``): native ones go to ``native`` (without their ending), the rest is returned as it was written,
    endings included."""
    other, after_native = [], False
    for chunk in re.split(r"(?<=[\r\n])", text):
        if not chunk:
            continue
        body = chunk.rstrip("\r\n")
        # a blank line, or OpenCV's "> ..." quoted lines, right after a native one: its continuation (another
        # thread's own "> ..." output, with no native line before it, is not)
        if NATIVE.match(body) or (after_native and (not body.strip() or body.startswith(">"))):
            if body.strip():
                native.append(body.strip())
            after_native = True
        else:
            other.append(chunk)
            after_native = False
    return "".join(other)
