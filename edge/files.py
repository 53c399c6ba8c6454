"""How edge-deploy writes files and folders, in one place: whole or not at all, and never over yours.

- :func:`atomic_path` / :func:`atomic_write_bytes` / :func:`atomic_write_text`: a temp file in the
  destination folder, renamed onto the name only when complete (readers see the old file or the new);
- :func:`make_folder` / :func:`remove_made`: create missing parent folders and, after a failure, remove
  exactly the ones this call created;
- :class:`StagedFolder`: build a whole folder (a bundle, a Triton repository) in a hidden sibling and
  swap it into place at commit, replacing only an empty folder or one that ``is_ours`` recognises
  (a folder holding anything else is refused, so user files are never deleted).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from edge.errors import BundleError, DataError, EdgeError


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, streamed (engines can be hundreds of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def json_file(path: str | os.PathLike[str], limit: int | None = None) -> Any:
    """The JSON value a file holds, or None when it holds none we can read: unreadable, over ``limit`` bytes, not
    JSON, or nested past Python's recursion limit. For the checks whether a file at an output's name is one we wrote
    (a training record, a report, a bundle's manifest, a repository's marker); a file nested 200,000 deep there was
    a RecursionError traceback in each."""
    import json

    try:
        if limit is not None and os.stat(path).st_size > limit:
            return None
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # (a UnicodeDecodeError is a ValueError)
        return None


def no_folder(parent: Path) -> str:
    """Why an output's folder cannot take it: a file of that name is there, or nothing is."""
    return f"{parent}: is a file, not a folder" if parent.exists() else f"{parent}: output folder does not exist"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], error: type[EdgeError] = BundleError) -> Iterator[Path]:
    """Yield a temp path in the destination folder; rename it onto ``path`` only on success.

    The temp name is in the same folder so the final ``os.replace`` is atomic on POSIX.
    """
    dest = Path(path)
    if dest.is_dir():
        raise error(f"{dest}: is a folder; give a file name")
    parent = dest.parent if str(dest.parent) else Path(".")
    if not parent.is_dir():
        raise error(no_folder(parent))
    if not os.access(parent, os.W_OK):
        raise error(f"{parent}: output folder is not writable")
    # under this process's private name (:func:`partial_file`), so the next write of this name removes what a killed
    # writer left (a mkstemp name carried no pid: a checkpoint half-written under SIGKILL stayed for good)
    clean_stale_files(parent, dest.name)
    tmp_path = partial_file(dest, ".tmp")
    try:
        tmp_path.open("xb").close()
    except OSError as e:
        raise error(f"{dest}: cannot write ({e.strerror or e})") from None
    try:
        yield tmp_path
        fsync_file(tmp_path)  # on disk before the name points at it: a crash leaves old or new, not empty
        os.replace(tmp_path, dest)
    except OSError as e:  # disk full, quota, I/O error: one line naming the file, not a traceback
        raise error(f"{dest}: cannot write ({e.strerror or e})") from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def staged_text(path: str | os.PathLike[str], text: str, error: type[EdgeError] = DataError) -> Callable[[bool], None]:
    """:func:`atomic_path`'s write in two halves, for an output named only once others are checked too: ``text``
    written and fsynced under the private partial name now (an ``error`` naming ``path`` when it cannot be, nothing
    left behind, a Ctrl-C included); returns ``done(commit)``, which renames it onto ``path`` (True) or removes it."""
    dest = Path(path)
    clean_stale_files(dest.parent, dest.name)  # a killed writer's file of this name
    tmp = partial_file(dest, ".tmp")
    try:
        tmp.write_text(text)
        fsync_file(tmp)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise error(f"{dest}: cannot write ({e.strerror or e})") from None
        raise

    def done(commit: bool) -> None:
        try:
            if commit:
                os.replace(tmp, dest)
        except OSError as e:
            raise error(f"{dest}: cannot write ({e.strerror or e})") from None
        finally:
            tmp.unlink(missing_ok=True)  # after the rename it is gone already

    return done


def fsync_file(path: str | os.PathLike[str]) -> None:
    """Flush a written file to the disk (a full disk or an I/O error shows here, as OSError)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def folder_end(text: str) -> str | None:
    """The separator a name ends in (a name typed as a folder's), or None; a backslash only where the system takes
    it for one (a file name's character on Linux). Path() drops it, so a check of the name must see it as typed."""
    return next((c for c in ("/", os.sep, os.altsep) if c and text.endswith(c)), None)


def check_target(path: str | os.PathLike[str], option: str, error: type[EdgeError] | None = None) -> None:
    """Refuse an output file name that is an existing folder, or a device, pipe or socket (the write
    renames a complete file onto the name: it would replace the node, and a reader on a pipe would
    get nothing), before any work is done."""
    from edge.errors import DataError

    p = Path(path)
    text = os.fspath(path)
    if text == "-":  # the shell's "standard output": a file of that name appeared in the working folder
        raise (error or DataError)(f"{option} -: standard output is not an output here ({option} writes a file, "
                                   "renamed onto its name when complete); name a file")
    if p.is_symlink():  # the rename replaces the link itself (a link to /proc/self/fd/1 made /dev/stdout a file)
        raise (error or DataError)(f"{p}: is a symbolic link (to {os.readlink(p)}); {option} writes a file renamed "
                                   "onto this name, which would replace the link, not write where it points: name "
                                   "the file itself")
    ends = folder_end(text)
    if ends is not None:  # a name ending in a separator names a folder: Path() drops it, and the write made a file
        raise (error or DataError)(f"{text}: names a folder (it ends in '{ends}'); {option} needs a file name")
    if p.is_dir():
        raise (error or DataError)(f"{p}: is a folder; {option} needs a file name")
    if p.exists() and not p.is_file():
        raise (error or DataError)(f"{p}: is not a regular file (a device, pipe or socket); {option} writes a "
                                   "file, renamed onto its name when complete")
    if (why := replace_problem(p)) is not None:  # before the work, not after it
        raise (error or DataError)(f"{p}: {why} ({option})")
    from edge.bundle import enclosing_bundle

    bundle = enclosing_bundle(p)
    if bundle is not None:  # its files are listed and hashed: a new or replaced one breaks it
        raise (error or DataError)(f"{p}: inside bundle {bundle}, whose files are listed and hashed in its manifest; "
                                   f"{option} must name a file outside it")


def check_outputs(outputs: dict[str, str | os.PathLike[str] | None], reads: list[Path],
                  folders: dict[str, str | os.PathLike[str] | None] | None = None, sealed: tuple[Path, ...] = (),
                  error: type[EdgeError] | None = None) -> None:
    """Refuse, before any work, output files that name one file twice or that would replace a file the run
    reads, and output folders inside a folder it reads.

    ``outputs``: option -> file; ``folders``: option -> a folder the run fills (a point dump); ``reads``:
    the files the run reads (a video, a pcap) and the folders whose files it reads (an image folder, a
    KITTI folder's image_2/velodyne/calib): an existing file directly in one is refused, one in a
    sub-folder (an earlier run's output) is not; ``sealed``: folders (read) that take no new file at any
    depth (a bundle: a file its manifest does not list makes a later export to it refuse the folder). A
    run that wrote its overlay onto its own video destroyed the recording and exited 0.
    """
    from edge.errors import DataError

    err = error or DataError
    seen: dict[Path, str] = {}
    ins = [(r, r.resolve()) for r in (*reads, *sealed)]
    closed = {r.resolve() for r in sealed}
    for option, path in outputs.items():
        if path is None:
            continue
        real = Path(path).resolve()
        for _, r in ins:  # a hard link to a file the run reads is that file under another name
            if real != r and real.is_file() and r.is_file() and os.path.samefile(real, r):
                real = r
        if real in seen:
            raise err(f"{path}: {seen[real]} and {option} name the same file; give each its own")
        seen[real] = option
        for given, r in ins:
            if real == r or (r in closed and r in real.parents) or (real.parent == r and Path(path).exists()):
                what = ("replace" if real == r else "replace a file in" if Path(path).exists() else "write into")
                raise err(f"{path}: {option} would {what} {given}, which this run reads; write it elsewhere")
    for option, folder in (folders or {}).items():
        if folder is None:
            continue
        real = Path(folder).resolve()
        for given, r in ins:
            if real == r or (r in closed and r in real.parents):
                raise err(f"{folder}: {option} would write into {given}, which this run reads; write it elsewhere")
        for f, other in seen.items():
            if f == real:
                raise err(f"{folder}: {other} and {option} name the same path; give each its own")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file + rename: readers see the old file or the new one."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """UTF-8 text version of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def inside(root: str | os.PathLike[str], rel: str) -> Path | None:
    """``root / rel`` when the folder it lies in is really inside ``root`` (no folder on the way is a link out),
    else None: what a bundle deletes or writes by a listed name must never follow a symlinked folder out of it
    (a security review: an ``engines`` link to another folder had the cache's cleanup delete files there)."""
    path = Path(root) / rel
    base = os.path.realpath(root)
    where = os.path.realpath(path.parent)
    return path if where == base or where.startswith(base + os.sep) else None


def make_folder(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents (OSError as mkdir raises it); returns the folders this
    call created, innermost first, so a failed write can remove exactly those (:func:`remove_made`)."""
    made = []
    p = folder
    while not p.exists():
        made.append(p)
        p = p.parent
    folder.mkdir(parents=True, exist_ok=True)
    return made


def remove_made(made: list[Path]) -> None:
    """Undo :func:`make_folder`: remove the folders it created, innermost first, while they are empty."""
    for p in made:
        try:
            p.rmdir()
        except OSError:
            return


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


#: numbers the partial files of this process (two sinks of one process writing one name get two files)
_PARTIALS = itertools.count()


#: an output name longer than this (bytes) is written under a digest of it: the partial name adds ~30 bytes, and a
#: name of 235 bytes (under the 255 a file system takes) made a temp name it refused, after the whole run
LONG_NAME = 200
#: a partial file whose writer is not seen (no such pid here) is removed only when unmodified this long: a live
#: writer in another pid namespace or on another host (a shared volume) is not seen either, and is writing
STALE_AFTER_S = 120.0


def _partial_stem(name: str) -> str:
    """The part of a partial file's name that names its output: the name, or a digest of a long one."""
    if len(name.encode("utf-8", "surrogateescape")) <= LONG_NAME:
        return name
    import hashlib

    return "long-" + hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:24]


def partial_file(path: str | os.PathLike[str], suffix: str = "") -> Path:
    """The private name an output file is written under until it is whole: ``.NAME.<pid>-<n>.partial<suffix>`` beside
    it (``suffix`` keeps an extension a writer chooses its format by; a name past :data:`LONG_NAME` bytes is a digest
    of it). Private to this process: two runs writing one output name each write their own file and the last rename
    wins, whole (a shared ``.NAME.partial`` mixed two runs' lines into one committed file, a broken line between
    them). A dead writer's file: :func:`clean_stale_files`."""
    p = Path(path)
    return p.with_name(f".{_partial_stem(p.name)}.{os.getpid()}-{next(_PARTIALS)}.partial{suffix}")


def replace_problem(path: str | os.PathLike[str]) -> str | None:
    """Why this user cannot rename a new file (or folder) onto the existing ``path``, or None: one owned by another
    user in a sticky folder (/tmp), where only its owner, the folder's or root may replace it. The folder taking a
    new file (:func:`probe_write`) did not say so: a training, a scoring, a run found it after all its work (a
    review as a user who is not root), and kept part of it."""
    import stat

    try:
        st = os.lstat(path)
        folder = os.stat(Path(path).absolute().parent)
    except OSError:
        return None  # nothing there (or its folder's own problem, said by the write check)
    uid = os.geteuid()
    if uid != 0 and folder.st_mode & stat.S_ISVTX and uid not in (st.st_uid, folder.st_uid):
        return (f"exists, owned by another user (uid {st.st_uid}) in a sticky folder (like /tmp), where only its "
                "owner may replace it")
    return None


def removable_problem(folder: str | os.PathLike[str]) -> str | None:
    """Why this user cannot remove what is in ``folder`` (the previous bundle an export replaces, whose old copy
    was left hidden beside the new one, exit 0, when it was another user's: a review), or None. Root is not checked:
    it may remove anything a rename let it move."""
    if os.geteuid() == 0:
        return None
    unread: list[OSError] = []
    for d, subdirs, files in os.walk(folder, onerror=unread.append):
        if unread:
            break
        if (subdirs or files) and not os.access(d, os.W_OK | os.X_OK):  # an empty one goes with its parent's right
            return f"this user cannot remove what is in it ({d} is not writable)"
    if unread:  # a folder it may not list: what it holds cannot be removed either (it was passed over)
        return f"this user cannot remove what is in it ({unread[0].filename}: {unread[0].strerror})"
    return None


def probe_write(path: str | os.PathLike[str]) -> None:
    """Create and remove a private file beside ``path`` (:func:`partial_file`): an OSError when its folder takes no
    file, or when an existing ``path`` may not be replaced by this user (:func:`replace_problem`). ``os.access`` says
    yes to root on a read-only mount or under /sys, where the real write then failed only at the end of the work (a
    video, a training run, a benchmark's report)."""
    if (why := replace_problem(path)) is not None:
        raise PermissionError(errno.EPERM, why)
    probe = partial_file(path)
    probe.open("xb").close()
    probe.unlink()


def check_writable(path: str | os.PathLike[str], option: str, error: type[Exception] = DataError) -> None:
    """The folder of ``path`` takes a file now (:func:`probe_write`), or one line naming ``path`` and ``option``:
    an output under /sys or on a read-only mount passed the access() check as root and failed only after the whole
    run (a training, a scoring), naming a hidden temporary file."""
    try:
        probe_write(path)
    except OSError as e:
        raise error(f"{path}: cannot write there ({e.strerror or e}) ({option})") from None


def clean_stale_files(folder: str | os.PathLike[str], name: str | None = None) -> list[Path]:
    """Remove the :func:`partial_file` files in ``folder`` (of output ``name``, or of any) whose writer process
    no longer exists (a run killed with SIGKILL) and that nothing wrote for :data:`STALE_AFTER_S`; returns what was
    removed. Other names are never touched."""
    import re

    stem = re.escape(_partial_stem(name)) if name is not None else r"[^/]+"
    removed = []
    for p, m in _files_named(folder, re.compile(rf"^\.{stem}\.(\d+)-\d+\.partial[^/]*$")):
        pid = int(m.group(1))
        if pid != os.getpid() and not _pid_alive(pid) and _unmodified_for(p, STALE_AFTER_S):
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    return removed


#: the suffix of :func:`partial_file`'s name for an earlier output moved aside until the run writing over it commits
ASIDE = ".aside"


def _files_named(folder: str | os.PathLike[str], pat: Any) -> Iterator[tuple[Path, Any]]:
    """(path, match) of the regular files (not links) in ``folder`` whose names ``pat`` matches; none when the
    folder cannot be listed."""
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return
    for p in entries:
        m = pat.match(p.name)
        if m is not None and not p.is_symlink() and p.is_file():
            yield p, m


def put_back_aside(folder: str | os.PathLike[str]) -> list[Path]:
    """Move back onto their names the earlier outputs a dead run had moved aside (``partial_file(final, ASIDE)``) and
    never committed over: the name holds that run's uncommitted file. At once, as an ``.old-<pid>`` folder is:
    :func:`clean_stale_files` would otherwise delete them as its leftovers (the earlier run's files were lost for
    good after a SIGKILL). Returns the names restored."""
    import re

    restored = []
    for p, m in _files_named(folder, re.compile(rf"^\.(.+)\.(\d+)-\d+\.partial{re.escape(ASIDE)}$")):
        if re.fullmatch(r"long-[0-9a-f]{24}", m.group(1)):
            continue  # a long name's digest (:func:`_partial_stem`): its output's name is not known here
        pid = int(m.group(2))
        if pid != os.getpid() and not _pid_alive(pid):
            with contextlib.suppress(OSError):
                os.replace(p, p.with_name(m.group(1)))
                restored.append(p.with_name(m.group(1)))
    return restored


def _unmodified_for(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime >= seconds
    except OSError:
        return False


def _tree_unmodified_for(path: Path, seconds: float, limit: int = 10_000) -> bool:
    """Whether nothing in the folder ``path`` (itself, its entries, theirs) was modified for ``seconds``: a writer
    filling a file inside a folder does not change the folder's own mtime. Past ``limit`` entries, or on an error,
    it says no (kept: a folder is removed only when known stale)."""
    now, seen, todo = time.time(), 0, [path]
    try:
        while todo:
            d = todo.pop()
            if now - d.stat().st_mtime < seconds:
                return False
            with os.scandir(d) as it:
                for e in it:
                    seen += 1
                    if seen > limit or now - e.stat(follow_symlinks=False).st_mtime < seconds:
                        return False
                    if e.is_dir(follow_symlinks=False):
                        todo.append(Path(e.path))
    except OSError:
        return False
    return True


def clean_stale(parent: Path, name: str) -> list[Path]:
    """Remove ``.NAME.<pid>.*.partial`` and ``.NAME.old-<pid>`` folders in ``parent`` left by writers whose
    process no longer exists (on this machine), a partial one only when nothing in it was written for
    :data:`STALE_AFTER_S` (a live writer in another pid namespace, or on another host of a shared volume, is not
    seen either: it is writing); returns what was removed. An ``old-<pid>`` folder with no ``NAME`` beside it
    (its writer died between its two renames) is moved back to ``NAME`` instead. Names without our pid field
    (another tool's) are never touched."""
    import re

    pat = re.compile(rf"^\.{re.escape(name)}\.(?:(\d+)\.[^/]*\.partial|old-(\d+))$")
    removed = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    for p in entries:
        m = pat.match(p.name)
        if m is None or not p.is_dir() or p.is_symlink():
            continue
        pid = int(m.group(1) or m.group(2))
        # the age rule is for partial folders, which a writer fills for a while; an old-<pid> folder is the previous
        # bundle, moved aside for the instant between a writer's two renames: its age says nothing of the writer
        # (a bundle written a minute before its writer was killed was left hidden)
        if pid != os.getpid() and not _pid_alive(pid) and (m.group(2) or _tree_unmodified_for(p, STALE_AFTER_S)):
            final = parent / name
            if m.group(2) and not (final.exists() or final.is_symlink()):
                # a writer killed between its two renames: this is the previous folder, with nothing in
                # its place; put it back rather than delete the user's last good one
                try:
                    os.replace(p, final)
                    continue
                except OSError:
                    pass
            try:
                shutil.rmtree(p, ignore_errors=True)
            except RecursionError:  # a tree deeper than Python's recursion limit: left, not the export's failure
                continue
            removed.append(p)
    return removed


def check_replaceable(out: str | os.PathLike[str], is_ours: Callable[[Path], bool], *, what: str = "folder",
                      error: type[EdgeError] = EdgeError, given: str | None = None,
                      explain: Callable[[Path], str] | None = None) -> None:
    """Refuse ``out`` unless it is absent, an empty folder, or a ``what`` we wrote (``is_ours``): the
    check :class:`StagedFolder` makes, callable on its own before any work starts."""
    out = Path(out)
    given = given or str(out)
    if out.exists() or out.is_symlink():
        if not out.is_dir() or out.is_symlink():
            raise error(f"{given}: exists and is not a folder")
        if any(out.iterdir()) and not is_ours(out):
            why = explain(out) if explain is not None else ""
            raise error(f"{given}: folder exists, is not empty and is not a {what} edge-deploy wrote{why}; "
                        "nothing was replaced: choose another output folder")
        why = replace_problem(out) or removable_problem(out)
        if why is not None:  # found before the work, not at the swap after it (or never: the old copy stayed)
            raise error(f"{given}: {why}; nothing was replaced: choose another output folder")
    if (why := creatable_problem(out)) is not None:  # found before the work, not when the result is moved there
        raise error(f"{given}: cannot be written: {why}")


def creatable_problem(out: Path) -> str | None:
    """Why a folder or file ``out`` could not be written now, where its folder is concerned: the nearest existing
    folder above it is a file, or takes no file (read-only mount, no permission); None when it can. A writer that
    stages beside ``out`` found that only when it moved the finished result in (an export's Triton repository under a
    file's name failed after the whole export)."""
    anc = out.parent
    while not (anc.exists() or anc.is_symlink()) and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        return f"{anc} is a file, not a folder"
    try:
        probe_write(partial_file(anc / out.name))  # a private name: never one that is there
    except OSError as e:
        return f"{anc} takes no file ({e.strerror or e})"
    return None


def folders_above(names: Iterable[str]) -> set[str]:
    """Every folder (relative POSIX path) that holds one of ``names`` (relative POSIX paths), at any depth."""
    return {q.as_posix() for f in names for q in Path(f).parents if q.as_posix() != "."}


def unlisted_entries(folder: Path, ours: Callable[[str, bool], bool], *, top_only: bool = False) -> list[str]:
    """What in ``folder`` its writer did not put there: each entry ``ours(relative POSIX path, is_folder)`` says no
    to, and every link (never ours); folders end in ``/``, and a foreign folder's own contents are not listed again.
    ``top_only``: the first level alone. Why: a bundle or a Triton repository is replaced whole by a re-export, so
    anything else in it (a user's notes, another model) must be named and kept, never deleted."""
    found: list[str] = []
    for p in sorted(folder.iterdir() if top_only else folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        is_dir = p.is_dir() and not p.is_symlink()
        if (p.is_symlink() or not ours(rel, is_dir)) and not any(rel.startswith(f) for f in found if f.endswith("/")):
            found.append(rel + "/" if is_dir else rel)
    return found


def deleted_note(found: Sequence[str]) -> str:
    """The clause a refusal to replace a folder adds for what it holds besides our files (:func:`unlisted_entries`):
    the first three named; "" for none."""
    if not found:
        return ""
    shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
    return f" only (it also holds {shown}, which a re-export would delete)"


class StagedFolder:
    """A folder built in a hidden ``.NAME.<pid>.*.partial`` sibling and swapped onto ``out`` at :meth:`commit`.

    A writer killed before it could clean up (SIGKILL, power loss) leaves that sibling, or the
    ``.NAME.old-<pid>`` of a swap in progress; the next writer of the same ``out`` removes those
    whose process is gone (:func:`clean_stale`), never one of a writer still running.

    ``is_ours(folder)`` says whether an existing non-empty ``out`` is something we wrote (a bundle, a
    Triton repository with our marker) and may be replaced; anything else is refused with ``error``,
    before any work and again at commit. :meth:`abort` (also on leaving a ``with`` block with an
    exception) removes the partial folder and the parents this object created.
    """

    def __init__(self, out: str | os.PathLike[str], is_ours: Callable[[Path], bool], *, what: str = "folder",
                 error: type[EdgeError] = EdgeError, given: str | None = None,
                 explain: Callable[[Path], str] | None = None) -> None:
        self.out = Path(out).resolve()  # "." or "x/.." must name the folder itself, not a parent's child
        self.is_ours, self.what, self.error, self.explain = is_ours, what, error, explain
        self.given = given or str(out)
        self._check()
        parent = self.out.parent
        try:
            self._made = make_folder(parent)
        except OSError as e:
            raise error(f"{parent}: cannot create output folder ({e.strerror})") from None
        if not os.access(parent, os.W_OK):
            remove_made(self._made)
            raise error(f"{parent}: output folder is not writable")
        clean_stale(parent, self.out.name)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.{os.getpid()}.", suffix=".partial", dir=parent))
        os.chmod(self.tmp, 0o777 & ~umask())  # mkdtemp makes 0700; readers may run as another user
        self.done = False

    def _check(self) -> None:
        check_replaceable(self.out, self.is_ours, what=self.what, error=self.error, given=self.given,
                          explain=self.explain)

    def __enter__(self) -> StagedFolder:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self.done:
            self.abort()

    def commit(self) -> Path:
        """Swap the finished folder onto ``out`` (putting the previous one back if that fails)."""
        old = None
        second = False
        try:
            if self.out.exists():
                if any(self.out.iterdir()) and not self.is_ours(self.out):
                    raise self.error(f"{self.out}: became a folder that is not ours while it was written; "
                                     "not replacing it")
                old = self.out.with_name(f".{self.out.name}.old-{os.getpid()}")
                if old.exists():  # a dead writer's that had this pid (clean_stale keeps this process's own name)
                    shutil.rmtree(old)
                os.replace(self.out, old)
            second = True  # the first rename (if any) is done: a failure now is the move in
            try:
                os.replace(self.tmp, self.out)
            except BaseException as e:  # an OSError, or a Ctrl-C between the two renames
                if old is not None and not self.out.exists():  # put the previous folder back, never nothing
                    os.replace(old, self.out)
                    old = None
                elif (old is not None and not isinstance(e, OSError) and self.out.is_dir()
                      and self.is_ours(self.out)):  # interrupted as another writer's folder moved in: it stays, and
                    shutil.rmtree(old, ignore_errors=True)  # the previous one goes, as below (it was left hidden)
                    old = None
                raise
        except OSError as e:
            if second and e.errno in (errno.ENOTEMPTY, errno.EEXIST) and self.out.is_dir() and self.is_ours(self.out):
                # another writer moved its finished folder in before this one's (two exports to one name): it stays,
                # and the previous folder this process moved aside goes (it was left behind in .NAME.old-<pid>);
                # this one is not moved in
                if old is not None:
                    shutil.rmtree(old, ignore_errors=True)
                self.abort()
                raise self.error(f"{self.out}: another {self.what} was moved in while this one was finishing (two "
                                 "writers to one name); it stays, this one was not written") from None
            self.abort()
            raise self.error(f"{self.out}: cannot move the finished {self.what} into place ({e.strerror})") from None
        except EdgeError:
            self.abort()
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        self.done = True
        return self.out

    def abort(self) -> None:
        """Remove the partial folder and any parent folders this object created."""
        shutil.rmtree(self.tmp, ignore_errors=True)
        remove_made(self._made)
        self.done = True


def read_problem(path: str | os.PathLike[str]) -> str | None:
    """Why Python cannot open ``path`` for reading (``cannot read (Permission denied)``), or None. For a file handed
    to a native reader afterwards: OpenCV said an unreadable video was "corrupt or unsupported codec" (a review as a
    user who is not root)."""
    try:
        with open(path, "rb"):
            return None
    except OSError as e:
        return f"cannot read ({e.strerror or e})"


def list_problem(folder: str | os.PathLike[str]) -> str | None:
    """Why this user cannot list ``folder`` (``cannot read (Permission denied)``), or None, also where it does not
    exist (its caller says so in its own words): ``glob``, ``rglob`` and ``iterdir``'s callers pass over a folder
    they may not list, and what it held was "no images" or "no KITTI index" (a review as a user who is not root)."""
    try:
        with os.scandir(folder):
            return None
    except FileNotFoundError:
        return None
    except OSError as e:
        return f"cannot read ({e.strerror or e})"


def is_utf8(text: str) -> bool:
    """Whether ``text`` encodes as UTF-8: not a name read from bytes that are not (Python's surrogate escapes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def utf8_name_problem(path: str | os.PathLike[str], reader: str = "OpenCV", *, absolute: bool = False) -> str | None:
    """Why ``reader`` (a native library's Python binding: OpenCV, ONNX Runtime, onnx) cannot be given ``path``, or
    None: a name that is not valid UTF-8, as given (``absolute``: as made absolute, the current folder's name then
    counting, for a reader given it so). Python holds such bytes as surrogates, where its own ``open`` reads the
    file; OpenCV's binding crashed the process on them (SIGSEGV, nothing said: a review), ONNX Runtime's and onnx's
    failed naming a file in the bundle, not the name."""
    given = os.fspath(path)
    if is_utf8(str(Path(path).absolute()) if absolute else given):
        return None
    where = "its name (or a folder's in its path)" if not is_utf8(given) else "the current folder's name"
    return f"{where} is not valid UTF-8, which {reader} cannot open; rename it"


def media_path(path: str | os.PathLike[str]) -> str:
    """``path`` as OpenCV's FFmpeg back end is given a file: absolute. A relative name with a colon before its first
    slash (``run:2/overlay.mp4``, ``clip:1.mp4``) is read by FFmpeg as a URL of that protocol, and the file neither
    opened nor written ("OpenCV cannot write a .mp4 video here"). A name OpenCV cannot take is a DataError
    (:func:`utf8_name_problem`)."""
    if (problem := utf8_name_problem(path, absolute=True)) is not None:
        raise DataError(f"{path}: {problem}")
    return str(Path(path).absolute())
