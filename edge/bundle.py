"""Bundle: one folder + ``manifest.json``, the single source of truth that travels to the car.

The manifest lists every file with its sha256 and size, the IOSpec of each graph, pre/post-processing
parameters, tool versions and measured parity. A bundle is written into a hidden temporary folder next
to its destination and renamed into place only when complete, so a failed export never leaves
something that looks finished. Loading verifies the schema version and every file's size and hash
before any backend touches a byte of it (a swapped or truncated engine is an error, not a crash).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge import jsonout
from edge.errors import BundleError, first_line
from edge.files import StagedFolder, json_file, sha256_file
from edge.manifest_schema import MANIFEST, SCHEMA_VERSION, check_rel, validate_manifest
from edge.spec import IOSpec

_check_rel = check_rel
log = logging.getLogger("edge.bundle")
#: the manifest roles of what ``edge build`` caches in a bundle (rebuilt from the bundle's ONNX on demand): a missing
#: or corrupt one is left out of that load with a warning instead of failing the whole bundle
ENGINE_CACHE_ROLES = ("tensorrt_engine", "tensorrt_record")
#: the largest manifest read: the shipped bundles' are 13-48 KB (a bundle of every precision, backend and gate try)
MANIFEST_MAX_BYTES = 64 << 20


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    """What tells one file from its replacement without reading it: device, inode, size, modification time."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def for_backend(arts: list[dict[str, Any]], backend: str) -> list[dict[str, Any]]:
    """Of matching artifacts, those ``backend`` may take: its own form (``preferred_by`` lists it), else the
    ones no backend claims; never another backend's own form (ONNX Runtime's U8S8 graph, TensorRT's fp16 INT8
    graph: gated for that backend only). :meth:`Bundle.artifact` and TensorRT's ``onnx_for`` both choose so."""
    mine = [a for a in arts if backend in a.get("preferred_by", ())]
    return mine or [a for a in arts if not a.get("preferred_by")]


@dataclass
class Bundle:
    """A verified bundle folder. Use :meth:`load`; construct directly only in tests."""

    path: Path
    manifest: dict[str, Any]
    #: engine artifacts a load left out (their cached files missing or corrupt) -> why; see :meth:`_leave_out`
    broken_engines: dict[str, str] = field(default_factory=dict)
    #: each verified file's (device, inode, size, mtime) when its sha256 was checked: :meth:`file` compares
    _verified: dict[str, tuple[int, int, int, int]] = field(default_factory=dict, repr=False)
    #: each listed file's own references (an ONNX model's external data, an IR's .bin): what a runtime opening it reads
    _refs: dict[str, list[str]] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, verify: bool = True) -> Bundle:
        """Read and validate the manifest, then (``verify``) check every listed file's size and sha256."""
        if not isinstance(path, str | os.PathLike):
            raise BundleError(f"a bundle is a folder path (str or os.PathLike), got {type(path).__name__}")
        root = Path(path)
        if not root.exists():
            raise BundleError(f"{root}: no such bundle folder{_family_hint(str(path))}")
        if not root.is_dir():
            raise BundleError(f"{root}: not a bundle folder (expected a folder with {MANIFEST})")
        mpath = root / MANIFEST
        if mpath.is_dir():
            raise BundleError(f"{mpath}: a folder where the bundle's manifest file should be")
        if not mpath.is_file():
            raise BundleError(f"{mpath}: missing; not a bundle (or an export that did not finish)")
        try:
            real, inside = mpath.resolve(), root.resolve()
        except (OSError, RuntimeError) as e:  # a symlink loop (RuntimeError before Python 3.13)
            raise BundleError(f"{mpath}: cannot be resolved ({type(e).__name__}: {first_line(e)})") from None
        if inside not in real.parents:  # the one file that says what every other file must be: held, as they are
            raise BundleError(f"{mpath}: a link leaving the bundle (to {real}); the manifest must be inside it")
        size = mpath.stat().st_size
        if size > MANIFEST_MAX_BYTES:  # read whole, a sparse 40 GB one was a MemoryError traceback (a review)
            raise BundleError(f"{mpath}: {size} bytes, over the {MANIFEST_MAX_BYTES >> 20} MiB a manifest may be "
                              "(one lists a bundle's files and results); not a bundle's manifest")
        try:
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BundleError(f"{mpath}: corrupt manifest ({e})") from None
        except (ValueError, RecursionError) as e:  # an integer of thousands of digits; arrays nested too deep
            raise BundleError(f"{mpath}: corrupt manifest ({type(e).__name__}: {str(e)[:120]})") from None
        except OSError as e:
            raise BundleError(f"{mpath}: cannot read ({e.strerror})") from None
        validate_manifest(manifest, where=str(mpath))
        bundle = cls(root, manifest)
        if verify:
            broken: dict[str, str] = {}
            for name in manifest["files"]:
                try:
                    bundle.verify_file(name)
                except BundleError as e:
                    if manifest["files"][name].get("role") not in ENGINE_CACHE_ROLES:
                        raise
                    broken[name] = str(e)
            if broken:
                bundle._leave_out(broken)
            bundle.verify_references()
        return bundle

    def _leave_out(self, broken: dict[str, str]) -> None:
        """Take the engine cache entries whose files failed verification out of this (in-memory) manifest, with a
        warning: a missing or corrupt engine that ``edge build`` wrote made the whole bundle unusable on every
        backend (ONNX Runtime and OpenVINO included), and ``edge build --force`` could not load it to replace it.
        ``broken_engines`` names each (artifact -> why); the next ``edge build`` drops them from the manifest."""
        for art in list(self.manifest["artifacts"]):
            files = [art.get("file"), *art.get("extra_files", [])]
            why = next((broken[f] for f in files if f in broken), None)
            if why is not None:
                self.broken_engines[art["name"]] = why
                drop_artifact(self.manifest, art["name"])
                log.warning("%s: engine '%s' left out (%s); `edge build` builds it again", self.path, art["name"],
                            why)
        for f in broken:  # a cache file no artifact names
            self.manifest["files"].pop(f, None)

    def verify_references(self) -> None:
        """BundleError unless every file a runtime would open on its own is listed (and so verified):
        an ONNX model's external data, an OpenVINO IR's weights."""
        from edge.onnx_file import opened_files

        files = self.manifest["files"]
        for name in files:
            self._refs[name] = refs = list(opened_files(self.path, name))
            for ref in refs:
                if ref not in files:
                    raise BundleError(f"{self.path / name}: makes the runtime read '{ref}', which {MANIFEST} does "
                                      "not list (an unverified file); re-export the bundle")

    # -- accessors ---------------------------------------------------------------------------
    @property
    def io(self) -> IOSpec:
        return IOSpec.from_dict(self.manifest["io"])

    @property
    def graphs(self) -> list[str]:
        """Graph names in manifest order ("full" for bundles that list none)."""
        return list(self.manifest.get("graphs", {})) or ["full"]

    @property
    def default_graph(self) -> str:
        """The graph a plain ``edge.load`` opens: the first one the bundle lists."""
        return self.graphs[0]

    def graph_io(self, graph: str | None = None) -> IOSpec:
        """IOSpec of one graph (default: the first)."""
        graph = graph or self.default_graph
        graphs = self.manifest.get("graphs", {})
        if graph in graphs:
            return IOSpec.from_dict(graphs[graph])
        if not graphs and graph == "full":
            return self.io
        raise BundleError(f"{self.path}: no graph '{graph}' (graphs: {sorted(graphs) or ['full']})")

    @property
    def model_name(self) -> str:
        return str(self.manifest["model"]["name"])

    @property
    def family(self) -> str:
        """The model family that made the bundle ("custom" for a plain ``edge.export`` module)."""
        m = self.manifest["model"]
        return str(m.get("family", m["name"]))

    @property
    def artifacts(self) -> list[dict[str, Any]]:
        return list(self.manifest["artifacts"])

    def artifact(self, *, fmt: str | None = None, graph: str | None = None, precision: str | None = None,
                 name: str | None = None, prefer: str | None = None) -> dict[str, Any]:
        """The first artifact matching the filters, or a BundleError listing what is there.

        ``graph`` None means any graph. Among matches, one whose ``preferred_by`` lists ``prefer`` (a
        backend name) wins: e.g. OpenVINO takes the NNCF IR over the IR read from the QDQ graph; then one
        no backend claims (ONNX Runtime without its U8S8 form takes the symmetric QDQ graph); another
        backend's own form is never a match for ``prefer`` (TensorRT's fp16 INT8 graph was gated for it
        alone), unless asked for by ``name``; one whose ``refused_by`` lists it is not a match (an INT8 graph
        that missed its budget on that backend).
        """
        found = []
        for a in self.manifest["artifacts"]:
            if prefer is not None and prefer in a.get("refused_by", ()):
                continue
            if name is not None and a.get("name") != name:
                continue
            if fmt is not None and a.get("format") != fmt:
                continue
            if graph is not None and graph not in a.get("graphs", [a.get("graph", "full")]):
                continue
            if precision is not None and a.get("precision") != precision:
                continue
            found.append(a)
        if prefer is not None and name is None:
            found = for_backend(found, prefer)
        if found:
            return dict(found[0])
        have = [a.get("name") for a in self.manifest["artifacts"]]
        want = {k: v for k, v in dict(name=name, format=fmt, graph=graph, precision=precision).items() if v}
        raise BundleError(f"{self.path}: no artifact matching {want} (bundle has {have})")

    def file(self, name: str) -> Path:
        """Path of a listed file (already verified at load), refused when it or a file it makes the runtime read is
        no longer the one the load checked: a new export swapped into this folder between the load and a runtime
        opening a graph by its path made `edge run` execute the new bundle's graphs under the old manifest, exit 0.
        (Only those files: an engine `edge build` replaced beside an unchanged graph is no reason to refuse it.)"""
        if name not in self.manifest["files"]:
            raise BundleError(f"{self.path}: '{name}' is not listed in {MANIFEST}")
        for listed in (name, *self._refs.get(name, ())):
            seen = self._verified.get(listed)
            if seen is None:
                continue
            try:
                now: tuple[int, int, int, int] | None = _identity((self.path / listed).stat())
            except OSError:
                now = None
            if now != seen:
                raise BundleError(f"{self.path / listed}: replaced since this bundle was loaded and verified (a new "
                                  "export into the folder?); load it again")
        return self.path / name

    def verify_file(self, name: str) -> None:
        """BundleError unless the file exists inside the bundle with the manifest's size and sha256.

        A symlink is resolved first and must stay inside the bundle folder: a link to a file elsewhere
        whose hash happens to match is still a file the bundle does not hold."""
        entry = self.manifest["files"][name]
        p = self.path / name
        try:
            root = self.path.resolve()
            real = p.resolve()
        except (OSError, RuntimeError) as e:  # a symlink loop (RuntimeError before Python 3.13)
            raise BundleError(f"{p}: cannot be resolved ({type(e).__name__}: {first_line(e)})") from None
        if real != root and root not in real.parents:
            raise BundleError(f"{p}: a link leaving the bundle (to {real}); bundle files must be inside it")
        if not p.is_file():
            raise BundleError(f"{p}: listed in {MANIFEST} as a file, but a folder is there" if p.is_dir() else
                              f"{p}: listed in {MANIFEST} but missing")
        st = p.stat()
        size = st.st_size
        if size != entry["size"]:
            raise BundleError(f"{p}: size {size} B but the manifest says {entry['size']} B (truncated or replaced)")
        try:
            digest = sha256_file(p)
        except OSError as e:
            raise BundleError(f"{p}: cannot read ({e.strerror})") from None
        if digest != entry["sha256"]:
            raise BundleError(f"{p}: sha256 does not match the manifest (corrupt or replaced)")
        seen = _identity(st)
        if _identity(p.stat()) != seen:
            raise BundleError(f"{p}: replaced while it was being verified (a new export into the folder?); load "
                              "the bundle again")
        self._verified[name] = seen


#: engine files ``edge build`` writes before listing them (a crash in between leaves them unlisted)
_UNLISTED_OURS = re.compile(r"^engines/[^/]+\.[0-9a-f]+\.(plan|json)$")


def foreign_files(folder: Path) -> list[str] | None:
    """What in a bundle folder edge-deploy did not write: entries neither the manifest nor a listed
    file's folder; None when the folder is not a bundle at all (no valid manifest)."""
    manifest = json_file(folder / MANIFEST, limit=MANIFEST_MAX_BYTES)
    try:
        validate_manifest(manifest)
    except BundleError:
        return None
    from edge.files import folders_above, unlisted_entries

    listed = set(manifest["files"]) | {MANIFEST}
    dirs = folders_above(listed)
    return unlisted_entries(folder, lambda rel, is_dir: rel in listed or (is_dir and (rel in dirs or rel == "engines"))
                            or bool(_UNLISTED_OURS.match(rel)))


def enclosing_bundle(path: str | os.PathLike[str]) -> Path | None:
    """The bundle folder ``path`` would be written inside (the nearest folder above it holding a manifest edge-deploy
    wrote: an object with ``schema_version`` and ``files``), or None. Why: a bundle lists and hashes its files, so a
    checkpoint trained to ``BUNDLE/weights.pt`` replaced a listed file (the bundle then refused to load: "size ...
    but the manifest says ...") or added unlisted ones a re-export refuses to delete."""
    from edge.files import json_file
    from edge.manifest_schema import MANIFEST

    for folder in Path(os.path.abspath(path)).parents:
        m = folder / MANIFEST
        if not m.is_file():
            continue
        doc = json_file(m, limit=MANIFEST_MAX_BYTES)  # a larger one is no bundle's (it was read whole: a review)
        if isinstance(doc, dict) and "schema_version" in doc and isinstance(doc.get("files"), dict):
            return folder
    return None


def _is_bundle(folder: Path) -> bool:
    """True only for a bundle folder holding nothing but what edge-deploy wrote: a re-export replaces
    the whole folder, so one with a user's notes or runs in it is refused (never rmtree user data)."""
    return foreign_files(folder) == []


def _why_not_ours(folder: Path) -> str:
    from edge.files import read_problem

    if (folder / MANIFEST).is_file() and (why := read_problem(folder / MANIFEST)) is not None:
        return f" as far as can be seen (its {MANIFEST}: {why})"  # it was said to be no bundle, alone (a review)
    from edge.files import deleted_note

    return deleted_note(foreign_files(folder) or [])


def check_out(out: str | os.PathLike[str]) -> None:
    """Refuse an ``--out`` that a bundle may not replace, before any export work (BundleError)."""
    from edge.files import check_replaceable, utf8_name_problem

    if (problem := utf8_name_problem(out, "onnx's and the runtimes' bindings", absolute=True)) is not None:
        raise BundleError(f"{out}: {problem}")  # it was "model.onnx: onnx.checker rejected the exported graph"

    inside = enclosing_bundle(out) or enclosing_bundle(Path(out).resolve())  # through a link, as the writer goes
    if inside is not None:  # its files are listed and hashed: a bundle in it made a re-export of it refuse the folder
        raise BundleError(f"{out}: inside bundle {inside}, whose files are listed and hashed in its manifest; "
                          "--out must be a folder outside it")
    check_replaceable(Path(out).resolve(), _is_bundle, what="bundle", error=BundleError, given=str(out),
                      explain=_why_not_ours)


class BundleWriter:
    """Builds a bundle in a hidden temp folder beside ``out``; :meth:`commit` renames it into place.

    Use as a context manager: leaving the block with an exception removes the temp folder, so an
    interrupted export leaves nothing behind. An existing bundle at ``out`` is replaced only at
    commit; an existing non-bundle, non-empty folder is refused (we never delete user data); the
    staging itself is :class:`edge.files.StagedFolder`, shared with the Triton repository writer.
    """

    def __init__(self, out: str | os.PathLike[str], manifest: Mapping[str, Any]) -> None:
        self.stage = StagedFolder(out, _is_bundle, what="bundle", error=BundleError, explain=_why_not_ours)
        self.out, self.tmp = self.stage.out, self.stage.tmp
        self.manifest: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "files": {}, "artifacts": [],
                                         **dict(manifest)}
        self._done = False

    def __enter__(self) -> BundleWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self._done:
            self.abort()

    def path_for(self, name: str) -> Path:
        """Where to write file ``name`` inside the temp folder (then call :meth:`register`)."""
        p = self.tmp / _check_rel(name)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def register(self, name: str, role: str) -> dict[str, Any]:
        """Hash a file already written at :meth:`path_for` and list it in the manifest."""
        p = self.tmp / _check_rel(name)
        if not p.is_file():
            raise BundleError(f"internal: {name} was not written")
        entry = {"sha256": sha256_file(p), "size": p.stat().st_size, "role": role}
        self.manifest["files"][name] = entry
        return entry

    def write_bytes(self, name: str, data: bytes, role: str) -> dict[str, Any]:
        self.path_for(name).write_bytes(data)
        return self.register(name, role)

    def add_artifact(self, artifact: Mapping[str, Any]) -> None:
        self.manifest["artifacts"].append(dict(artifact))

    def remove_artifact(self, name: str) -> None:
        """Take artifact ``name`` out of the bundle being written: its entry, and its files from the manifest
        and the temp folder (a form that turned out unusable, so the bundle does not carry it)."""
        for f in drop_artifact(self.manifest, name):
            (self.tmp / _check_rel(f)).unlink(missing_ok=True)

    def commit(self) -> Bundle:
        """Validate the manifest, write it, and swap the temp folder into place (replacing a bundle)."""
        validate_manifest(self.manifest, where=f"{self.out}/{MANIFEST} (being written)")
        # NaN (a checkpoint's eval of nan, a metric of 0/0) as null: strict JSON readers refuse the bare word
        (self.tmp / MANIFEST).write_text(jsonout.dumps(self.manifest, indent=2, sort_keys=False) + "\n")
        self.stage.commit()
        self._done = True
        return Bundle.load(self.out)

    def abort(self) -> None:
        """Remove the temp folder and any parent folders this writer created."""
        self.stage.abort()
        self._done = True


def drop_artifact(manifest: dict[str, Any], name: str) -> list[str]:
    """Take artifact ``name`` (every entry of that name) out of ``manifest`` with its files' entries; the files
    it listed, for the caller to delete once the manifest without them is written."""
    gone = [a for a in manifest["artifacts"] if a.get("name") == name]
    manifest["artifacts"] = [a for a in manifest["artifacts"] if a.get("name") != name]
    files = [f for a in gone for f in [a.get("file"), *a.get("extra_files", [])] if f]
    for f in files:
        manifest["files"].pop(f, None)
    return files


def rewrite_manifest(folder: str | os.PathLike[str], manifest: dict[str, Any]) -> None:
    """Validate ``manifest`` and write it over the bundle's in ``folder`` (temp file + rename, NaN as null):
    how a bundle already in place changes (an engine added or removed); a new bundle is a :class:`BundleWriter`."""
    from edge.files import atomic_write_text

    path = Path(folder) / MANIFEST
    validate_manifest(manifest, where=str(path))
    atomic_write_text(path, jsonout.dumps(manifest, indent=2, sort_keys=False) + "\n")


def _family_hint(name: str) -> str:
    """When a missing bundle's name is a model family's: how to make that bundle (``edge run FAMILY``)."""
    if os.sep in name or "/" in name:
        return ""
    try:
        from edge.models.registry import list_models

        known = name in list_models()
    except Exception:  # a broken plug-in must not hide the real error
        return ""
    return f" ('{name}' is a model family: export it first, e.g. edge-export {name} --out {name})" if known else ""
