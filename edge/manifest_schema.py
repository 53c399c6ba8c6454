"""The bundle manifest's schema: every field any command reads, with its type, checked before use.

A manifest is data from a file a user was given, so nothing downstream may meet a type it does not
expect (``lowered`` a list, an artifact's ``graph: 5``, ``config.frames: 1e7``): each violation is one
BundleError naming the manifest and the field. Keys not listed here are allowed (informational
records such as ``parity`` or ``gates`` are written by us and read only for display); the keys
listed are checked all the way down to what code indexes. Sizes that drive allocation (tensor
shapes) are bounded here; a model config is checked against its family's card when the card is
known (:func:`check_config`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge.errors import BundleError, SpecError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
PRECISIONS = ("fp32", "fp16", "int8")
#: the largest tensor a manifest may declare (named dims counted as 1): random feeds, ring buffers and
#: engine profiles are allocated from these shapes
MAX_TENSOR_BYTES = 1 << 30
#: a config value may exceed the largest value of that key among its card's named configs by this factor
CONFIG_HEADROOM = 16
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
#: a graph's name: it becomes part of file names (engines/<graph>...), so never a path
GRAPH_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def check_rel(name: Any, where: str = "bundle") -> str:
    """A file name inside the bundle: relative, no ``..``, not the manifest itself."""
    if not isinstance(name, str) or not name:
        raise BundleError(f"{where}: bad file name {name!r} (must be a relative path inside the bundle)")
    p = Path(name)
    if p.is_absolute() or ".." in p.parts or name == MANIFEST or "\x00" in name:
        raise BundleError(f"{where}: bad file name {name!r} (must be a relative path inside the bundle)")
    return p.as_posix()


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _need(ok: bool, where: str, what: str) -> None:
    if not ok:
        raise BundleError(f"{where}: {what}")


def _strs(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _str_map(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, str) for k, x in v.items())


def _io(d: Any, where: str, field: str) -> None:
    from edge.spec import IOSpec

    try:
        io = IOSpec.from_dict(d)
    except SpecError as e:
        raise BundleError(f"{where}: bad '{field}': {e}") from None
    except (TypeError, ValueError, AttributeError) as e:  # a spec of the wrong shape altogether
        raise BundleError(f"{where}: bad '{field}' ({type(e).__name__})") from None
    import numpy as np

    for t in (*io.inputs, *io.outputs):
        n = 1
        for dim in t.shape:
            n *= dim if isinstance(dim, int) else 1
        if n * np.dtype(t.dtype).itemsize > MAX_TENSOR_BYTES:
            raise BundleError(f"{where}: '{field}' tensor '{t.name}' of shape {list(t.shape)} declares more than "
                              f"{MAX_TENSOR_BYTES >> 20} MiB")


def _artifact(a: Any, i: int, where: str, files: Mapping[str, Any], graphs: set[str]) -> None:
    _need(isinstance(a, dict), where, f"artifact {i} must be an object")
    _need(isinstance(a.get("name"), str) and bool(a["name"]), where, f"artifact {i} needs a string 'name'")
    at = f"artifact '{a['name']}'"
    _need(isinstance(a.get("format"), str), where, f"{at} needs a string 'format'")
    _need(isinstance(a.get("file"), str) and bool(a["file"]), where, f"{at} needs a 'file' (a name)")
    _need(_strs(a.get("extra_files", [])), where, f"{at} has a malformed 'extra_files' (list of names)")
    lowered = a.get("lowered", {})
    _need(_str_map(lowered), where, f"{at} has a malformed 'lowered' (backend -> file name)")
    for f in [a.get("file"), *a.get("extra_files", []), *lowered.values()]:
        _need(f is None or f in files, where, f"{at} refers to unlisted file '{f}'")
    # what a runtime opens on its own (external data, IR weights) is found by these suffixes
    # (Bundle.verify_references): a model under another name would escape that check
    suffix = {"onnx": ".onnx", "openvino_ir": ".xml"}.get(a["format"])
    _need(suffix is None or (a["file"].endswith(suffix) and all(f.endswith(".onnx") for f in lowered.values())),
          where, f"{at}: a '{a['format']}' file must be named *{suffix} (lowered ones *.onnx)")
    if "graph" in a:
        _need(isinstance(a["graph"], str) and bool(GRAPH_NAME.match(a["graph"]))
              and (a["graph"] in graphs or not graphs), where,
              f"{at} has a 'graph' that is not one of the bundle's graphs ({a['graph']!r})")
    if "graphs" in a:
        _need(_strs(a["graphs"]) and all(GRAPH_NAME.match(g) and (g in graphs or not graphs) for g in a["graphs"]),
              where, f"{at} has a malformed 'graphs' (list of the bundle's graph names)")
    if "precision" in a:
        _need(a["precision"] in PRECISIONS, where, f"{at} has precision {a['precision']!r} (one of {PRECISIONS})")
    for key in ("preferred_by", "refused_by"):
        _need(_strs(a.get(key, [])), where, f"{at} has a malformed '{key}' (list of backend names)")
    for key in ("attention", "derived_from", "device", "tensorrt"):
        _need(key not in a or isinstance(a[key], str), where, f"{at} has a malformed '{key}' (a string)")
    for key in ("quantization", "parity", "opset"):
        _need(key not in a or isinstance(a[key], dict), where, f"{at} has a malformed '{key}' (an object)")
    if "max_batch" in a:
        _need(_int(a["max_batch"]) and a["max_batch"] >= 1, where, f"{at} has a malformed 'max_batch'")
    if "preprocess" in a:  # an engine that resizes and normalises camera frames itself
        _need(a["preprocess"] == "engine", where, f"{at} has preprocess {a['preprocess']!r} (only 'engine')")
    if "io" in a:
        _io(a["io"], where, f"{at}.io")


def _programs(m: dict[str, Any], where: str, artifacts: set[str], graphs: set[str]) -> None:
    """``programs``: name -> {graphs: [names], precisions: {precision: {backend: {graph: artifact}}}}."""
    if "programs" not in m:  # bundles from before programs existed
        return
    progs = m["programs"]  # null is refused below: code reads it with .get()
    _need(isinstance(progs, dict), where, "'programs' must be an object of name -> {graphs, precisions}")
    for name, prog in progs.items():
        if not isinstance(prog, dict) or not isinstance(prog.get("graphs"), list) or not prog["graphs"] \
                or not all(isinstance(g, str) and (g in graphs or not graphs) for g in prog["graphs"]):
            raise BundleError(f"{where}: program '{name}' needs 'graphs', a list of the bundle's graph names")
        table = prog.get("precisions", {})
        ok = isinstance(table, dict) and all(
            p in PRECISIONS and isinstance(per, dict) and all(
                isinstance(names, dict) and all(isinstance(g, str) and isinstance(a, str) and a in artifacts
                                                for g, a in names.items())
                for names in per.values())
            for p, per in table.items())
        _need(ok, where, f"program '{name}' has a malformed 'precisions' table "
                         "(precision -> backend -> graph -> a listed artifact name)")
        _need("description" not in prog or isinstance(prog["description"], str), where,
              f"program '{name}' has a malformed 'description'")


def validate_manifest(m: Any, where: str = MANIFEST) -> None:
    """Raise BundleError unless ``m`` is a manifest this version understands, every field typed."""
    _need(isinstance(m, dict), where, "manifest must be a JSON object")
    missing = [k for k in ("schema_version", "model", "io", "files", "artifacts") if k not in m]
    _need(not missing, where, f"manifest lacks {missing}")
    v = m["schema_version"]
    _need(_int(v), where, f"schema_version must be an integer, got {v!r}")
    if v > SCHEMA_VERSION:
        raise BundleError(f"{where}: schema_version {v} is newer than this edge-deploy understands "
                          f"({SCHEMA_VERSION}); upgrade edge-deploy")
    _need(v >= 1, where, f"bad schema_version {v}")
    model = m["model"]
    _need(isinstance(model, dict) and isinstance(model.get("name"), str) and bool(model["name"]), where,
          "'model' must be an object with a string 'name'")
    for key in ("family", "version"):
        _need(key not in model or isinstance(model[key], str), where, f"'model.{key}' must be a string")
    _need(model.get("config") is None or isinstance(model["config"], dict), where, "'model.config' must be an object")
    _io(m["io"], where, "io")
    files = m["files"]
    _need(isinstance(files, dict), where, "'files' must be an object of name -> {sha256, size}")
    for name, entry in files.items():
        check_rel(name, where)
        if (not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str)
                or not _HEX64.match(entry["sha256"]) or not _int(entry.get("size")) or entry["size"] < 0):
            raise BundleError(f"{where}: file entry '{name}' needs a 64-hex sha256 and an integer size")
        _need("role" not in entry or isinstance(entry["role"], str), where, f"file entry '{name}' has a bad 'role'")
    graphs = m.get("graphs", {})
    _need(isinstance(graphs, dict), where, "'graphs' must be an object of name -> io spec")
    for gname, gio in graphs.items():
        # a graph's name becomes part of file names (engines/<graph>...): a plain name, never a path
        _need(bool(GRAPH_NAME.match(gname)), where, f"graph name {gname!r} must be letters, digits, '_', '-' or "
              "'.' (not starting with '.' or '-')")
        _io(gio, where, f"graphs.{gname}")
    arts = m["artifacts"]
    _need(isinstance(arts, list), where, "'artifacts' must be a list")
    for i, a in enumerate(arts):
        _artifact(a, i, where, files, set(graphs))
    names = [a["name"] for a in arts]
    dup = sorted({n for n in names if names.count(n) > 1})
    _need(not dup, where, f"artifact names must be unique ({dup[0] if dup else ''!r} repeats)")
    _programs(m, where, set(names), set(graphs))
    for key in ("task", "preprocess", "attention"):
        _need(m.get(key) is None or isinstance(m[key], dict), where, f"'{key}' must be an object")
    task = m.get("task") or {}
    _need("results" not in task or isinstance(task["results"], str), where, "'task.results' must be a string")
    _need(m.get("tools") is None or _str_map(m["tools"]), where, "'tools' must be an object of name -> version")
    _need("created_unix" not in m or _int(m["created_unix"]), where, "'created_unix' must be an integer")
    dims = m.get("dynamic_dims")
    if dims is not None:
        _need(isinstance(dims, dict) and all(
            isinstance(k, str) and isinstance(r, list) and len(r) == 3 and all(_int(x) and 1 <= x <= 1 << 20 for x in r)
            and r[0] <= r[1] <= r[2] for k, r in dims.items()), where,
            "'dynamic_dims' must be name -> [min, opt, max] integers, min <= opt <= max")


def check_config(cfg: Any, card: Any, where: str) -> dict[str, Any]:
    """A bundle's model config checked against its family's card before anything is built from it.

    Keys must be the card's (those of its named configs; the ones every named config has are required),
    each value of the type the card's configs use (an int stays an int: ``frames: 1e7`` is refused; a key
    any config gives as a float takes numbers), numbers finite and no larger than
    :data:`CONFIG_HEADROOM` times the largest value the card's configs give that key (sizes drive
    allocation); a key's ``config_added`` value counts as one the card gives. A card with no named
    configs is not checked. An ``export_options`` key may also be 0 where the configs' values are
    positive (options are not sizes; the model validated them at export).
    """
    named = [dict(c) for c in getattr(card, "configs", {}).values()]
    if not named:
        return dict(cfg or {})
    _need(isinstance(cfg, dict), where, "'model.config' must be an object")
    known = set().union(*(c.keys() for c in named))
    extra = sorted(set(cfg) - known)
    _need(not extra, where, f"'model.config' has keys the '{card.name}' card does not know: {extra}")
    missing = sorted(set.intersection(*(set(c) for c in named)) - set(cfg))  # what every named config has
    _need(not missing, where, f"'model.config' lacks {missing}")
    added = dict(getattr(card, "config_added", {}) or {})
    options = set(getattr(card, "export_options", {}) or {})
    for key, value in cfg.items():
        # what an older checkpoint legitimately says (config_added: the value that meant "before") is as
        # valid as the named configs' values (landing 0, keep_mix 0 in bundles from before those options)
        refs = [c[key] for c in named if key in c] + ([added[key]] if key in added else [])
        nums = [r for r in refs if isinstance(r, int | float) and not isinstance(r, bool)]
        if key in options and not isinstance(value, bool) and nums and min(nums) >= 0:
            # an export option is not a size: the model accepted 0 when the bundle was made (a pruning
            # layer 0, a diversity weight 0); it keeps its type, stays non-negative and bounded (and a
            # negative one is told ">= 0", the bound that holds, not "> 0")
            refs = [*refs, type(refs[0])(0)]
        _value(value, refs, where, f"model.config.{key}")
    rules = getattr(card, "config_rules", None)
    if rules is not None:
        try:
            rules(cfg)
        except ValueError as e:
            raise BundleError(f"{where}: 'model.config' {e}") from None
    return dict(cfg)


def _value(value: Any, refs: list[Any], where: str, field: str) -> None:
    ref = next((r for r in refs if r is not None), None)
    if ref is None:
        return
    if _int(ref) and any(isinstance(r, float) for r in refs):
        ref = float(ref)  # one named config's 0.5 makes the key a number, whichever config comes first
    if isinstance(ref, bool):
        _need(isinstance(value, bool), where, f"'{field}' must be true or false, got {value!r}")
        return
    if _int(ref):
        _need(_int(value), where, f"'{field}' must be an integer, got {value!r}")
    elif isinstance(ref, float):
        _need((_int(value) or isinstance(value, float)) and math.isfinite(value), where,
              f"'{field}' must be a finite number, got {value!r}")
    elif isinstance(ref, str):
        _need(isinstance(value, str), where, f"'{field}' must be a string")
        return
    elif isinstance(ref, list | tuple):
        lists = [r for r in refs if isinstance(r, list | tuple)]
        lens = {len(r) for r in lists}
        _need(isinstance(value, list | tuple), where, f"'{field}' must be a list, got {value!r}")
        if len(lens) == 1:  # a fixed-length field (input_hw): position by position
            _need(len(value) == len(ref), where, f"'{field}' must be a list of {len(ref)}, got {value!r}")
            for j, x in enumerate(value):
                _value(x, [r[j] for r in lists], where, f"{field}[{j}]")
        else:  # a variable-length field (channels per stage, anchors): any length the family could use
            _need(len(value) <= max(lens) * CONFIG_HEADROOM, where, f"'{field}' has {len(value)} entries")
            _need(len(value) > 0 or min(lens) == 0, where, f"'{field}' is empty (the family's never are)")
            pooled = [x for r in lists for x in r]
            for j, x in enumerate(value):
                if pooled:
                    _value(x, pooled, where, f"{field}[{j}]")
        return
    elif isinstance(ref, dict):
        _need(isinstance(value, dict), where, f"'{field}' must be an object")
        return
    else:
        return
    nums = [r for r in refs if isinstance(r, int | float) and not isinstance(r, bool)]
    top = max(abs(r) for r in nums)
    _need(abs(value) <= max(top, 1) * CONFIG_HEADROOM, where,
          f"'{field}' = {value} is beyond what this model family uses (at most {max(top, 1) * CONFIG_HEADROOM})")
    low = min(nums)  # a size the family always gives > 0 (a height, a count) must stay > 0
    _need(not (low > 0 and value <= 0) and not (low >= 0 and value < 0), where,
          f"'{field}' = {value} must be {'> 0' if low > 0 else '>= 0'} (as in every '{field.split('.')[-1]}' the "
          "family uses)")
