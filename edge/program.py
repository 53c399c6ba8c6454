"""Programs: a family's runner over loaded graphs, the unit that ``edge run``, the gate and bench execute.

A :class:`Program` holds one runtime per graph of a :class:`~edge.models.contract.ProgramSpec` and the
card's runner calling them. The same program runs torch modules (training scores), ONNX/IR files being
written (the export's parity and INT8 gate) or a bundle's artifacts on any backend (``edge run``,
``edge bench``, ``edge.load_program``). It counts graph calls per step (MACs per step in bench) and can
record the feeds each graph receives: that is how INT8 calibration sets for inner graphs (a temporal
head's ring buffer, an iteration step's current estimate) are made, by running the real program.

Bundles made with ``edge.export`` from a plain module have no card: they get a one-graph program whose
step is the graph itself.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from edge.errors import BundleError, DataError, ModelError, SpecError
from edge.manifest_schema import MANIFEST
from edge.models.contract import Config, ModelCard, ProgramSpec, Sample


class _Passthrough:
    """The runner of a card-less bundle: one graph, fed the step feeds as they are."""

    def __init__(self, graphs: Mapping[str, Any], cfg: Config) -> None:
        (self.fn,) = graphs.values()

    def reset(self) -> None:
        pass

    def step(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.fn(feeds)


def single_graph_spec(graph: str) -> ProgramSpec:
    """The program of a bundle without a family card: its one graph."""
    return ProgramSpec("model", (graph,), _Passthrough, "the exported module")


class _Feeds(dict):  # type: ignore[type-arg]
    """A step's feeds that remember a name looked up and absent (what :meth:`Program.step` reports)."""

    missing: Any = None

    def __getitem__(self, key: Any) -> Any:
        try:
            return super().__getitem__(key)
        except KeyError:
            self.missing = key
            raise


class Program:
    """Runtimes by graph name + the card's runner over them; ``step(feeds) -> outputs``."""

    def __init__(self, spec: ProgramSpec, runtimes: Mapping[str, Any], cfg: Config, *, owns: bool = True,
                 fronts: tuple[Any, ...] = (), io_from: str | None = None) -> None:
        missing = [g for g in spec.graphs if g not in runtimes]
        if missing:
            raise BundleError(f"program '{spec.name}' needs graphs {missing}")
        self.spec = spec
        self.runtimes = dict(runtimes)
        self.cfg = cfg
        self.calls: Counter[str] = Counter()
        self._owns = owns
        self._record: dict[str, list[dict[str, np.ndarray]]] | None = None
        #: image inputs whose runtimes preprocess inside the engine (their feeds are camera bytes)
        self.fronts = tuple(fronts)
        #: the file the graphs' IOSpecs were read from (a bundle's manifest), named when a feed does not fit one
        self.io_from = io_from
        self.runner = spec.runner({g: self._graph_fn(g) for g in spec.graphs}, cfg)

    @property
    def name(self) -> str:
        return self.spec.name

    def _first(self) -> Any:
        if not self.runtimes:
            from edge.errors import ClosedError

            raise ClosedError(f"program '{self.spec.name}' is closed")
        return self.runtimes[self.spec.graphs[0]]

    @property
    def backend(self) -> str:
        return str(getattr(self._first(), "backend", "?"))

    @property
    def inputs(self) -> Any:
        """The first graph's inputs (for a one-graph program: exactly what ``step`` takes)."""
        return self._first().inputs

    @property
    def inference_precision(self) -> str | None:
        """The float-layer precision the runtimes that have one compile with (OpenVINO: an INT8 IR gated with
        bf16 float layers runs them in bf16 where native), "/"-joined when they differ; None when none has."""
        hints = {getattr(rt, "inference_precision", None) for rt in self.runtimes.values()} - {None}
        return "/".join(sorted(hints)) if hints else None

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``step``, under the Runtime protocol's name (a one-graph program is a Runtime)."""
        return self.step(feeds)

    def _graph_fn(self, graph: str) -> Any:
        rt = self.runtimes[graph]

        def call(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            self.calls[graph] += 1
            if self._record is not None:
                self._record[graph].append({k: np.array(v, copy=True) for k, v in feeds.items()})
            try:
                return rt.infer(feeds)
            except SpecError as e:  # which of the program's graphs was fed wrong (a card's io vs its preprocess),
                # and whose spec it was held to: a bundle's manifest is a file a user may have edited
                where = f" of {self.io_from}" if self.io_from else ""
                raise SpecError(f"graph '{graph}'{where}: {e}") from None

        return call

    def reset(self) -> None:
        self._first()  # ClosedError once closed, as step
        self.runner.reset()

    def preprocess(self, card: ModelCard, frames: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """``card.preprocess`` as this program takes it: the image inputs its engines preprocess themselves
        (``fronts``) stay camera bytes (:func:`edge.data.images.raw_images`), and feeds only graphs it does not
        call read are not made (:func:`edge.models.contract.feeds_for`)."""
        from edge.models.contract import feeds_for

        with feeds_for((*self.spec.graphs, *self.spec.host_stages)):
            if not self.fronts:
                return card.preprocessed(frames, self.cfg)
            from edge.data.images import raw_images

            with raw_images(self.fronts):
                return card.preprocessed(frames, self.cfg)

    def step(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One step of the card's runner on ``feeds`` (what the card's ``preprocess`` makes of one frame set);
        a SpecError naming a feed the runner reads that ``feeds`` lacks (a family's runner indexes them)."""
        if not self.runtimes:
            self._first()  # ClosedError naming the program (the runtime's own said "onnxruntime runtime is closed")
        if not isinstance(feeds, Mapping):
            raise SpecError(f"program '{self.spec.name}': step feeds are a mapping of name -> array, got "
                            f"{type(feeds).__name__}")
        given = _Feeds(feeds)
        try:
            return self.runner.step(given)
        except KeyError as e:  # only a lookup of the feeds themselves: any other KeyError is a bug, raised as is
            if given.missing is None or e.args[:1] != (given.missing,):
                raise
            raise SpecError(f"program '{self.spec.name}': no step feed '{given.missing}' (given: "
                            f"{', '.join(sorted(map(str, feeds))) or 'none'})") from None

    def prepare(self, sizes: Iterable[tuple[int, int]]) -> None:
        """Get the engines that preprocess camera frames ready for frames of these (H, W) sizes (an
        OpenVINO front compiles per size); runtimes without such a step are left as they are."""
        unique = list(dict.fromkeys(sizes))
        self._first()  # ClosedError once closed (a KeyError of the graph's name, a review)
        for spec in self.fronts:
            prep = getattr(self.runtimes[spec.graph], "prepare_image_size", None)
            if prep is not None:
                for hw in unique:
                    prep(hw)

    def record(self, on: bool = True) -> dict[str, list[dict[str, np.ndarray]]]:
        """Start recording every graph's feeds (``on``), or stop and return what was recorded."""
        got = self._record or {g: [] for g in self.spec.graphs}
        self._record = {g: [] for g in self.spec.graphs} if on else None
        return got

    def graph_feeds(self, card: ModelCard | None, sequences: Iterable[Sequence[Any]], *, preprocessed: bool = False
                    ) -> dict[str, list[dict[str, np.ndarray]]]:
        """What each graph receives when the program runs over ``sequences`` (each from a fresh state): frame
        sets through :meth:`preprocess` (or step feeds already made, ``preprocessed``). The one way a
        calibration set, a parity check's inputs and an engine check's inputs are recorded."""
        got: dict[str, list[dict[str, np.ndarray]]] = {g: [] for g in self.spec.graphs}
        for seq in sequences:
            self.record(True)
            self.reset()
            try:
                for item in seq:
                    self.step(item if preprocessed or card is None else self.preprocess(card, item))
            finally:
                for g, feeds in self.record(False).items():
                    got[g].extend(feeds)
        return got

    def close(self) -> None:
        if self._owns:
            for rt in self.runtimes.values():
                rt.close()
        self.runtimes = {}

    def __enter__(self) -> Program:
        self._first()  # `with prog:` after close() is refused, not entered
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ------------------------------------------------------------------------------------ bundles


def card_for_bundle(bundle: Any) -> ModelCard | None:
    """The family card of a bundle, None for a plain ``edge.export`` module; ModelError when the family
    that made the bundle is not installed here."""
    from edge.models import get_card

    model = bundle.manifest.get("model", {})
    family = model.get("family", model.get("name"))
    if family in (None, "custom"):
        return None
    try:
        card = get_card(family)
    except ModelError as e:
        raise ModelError(f"{bundle.path}: made by model family '{family}', which cannot be loaded here ({e}); "
                         "install the package that provides it") from None
    from edge.manifest_schema import check_config

    # the config sizes ring buffers, resizes and crops: checked against the card before anything uses it. A
    # bundle exported before the card gained a key has none: the value that meant "before" (config_added, as
    # for an older checkpoint) is filled in, in memory, so every reader of the manifest's config sees it
    cfg = model.get("config") or {}
    filled = [k for k in (card.config_added or {}) if k not in cfg] if isinstance(cfg, dict) else []
    if filled:
        cfg = {**{k: card.config_added[k] for k in filled}, **cfg}
    check_config(cfg, card, f"{bundle.path}/{MANIFEST}")
    if filled:  # an older bundle has only the graphs those values make (a hand-edited manifest may not)
        extra = sorted(set(bundle.graphs) - set(card.graphs_of([p.name for p in card.programs_for(cfg)])))
        if extra:
            raise BundleError(f"{bundle.path}/{MANIFEST}: 'model.config' lacks {filled}, and with the values they "
                              f"had before (the card's config_added) there is no graph {extra[0]!r}, which the "
                              "bundle has: the manifest does not describe its graphs; export the bundle again")
    if model.get("config") is not None:
        model["config"] = cfg
    return card


def bundle_programs(bundle: Any, card: ModelCard | None) -> list[ProgramSpec]:
    """The programs a bundle can run, in the card's preference order.

    A bundle's manifest lists the programs it was exported (and gated) for; older bundles list none,
    and then every card program whose graphs are all in the bundle counts.
    """
    graphs = bundle.graphs
    if card is None:
        return [single_graph_spec(graphs[0])]
    have = set(graphs)
    listed = bundle.manifest.get("programs")
    out = [p for p in card.programs if set(p.graphs) <= have and (listed is None or p.name in listed)]
    if not out:
        raise BundleError(f"{bundle.path}: none of model '{card.name}''s programs "
                          f"({', '.join(p.name for p in card.programs)}) was exported into this bundle "
                          f"(graphs: {sorted(have)})")
    return out


def program_precisions(bundle: Any, graphs: Sequence[str]) -> dict[str, dict[str, dict[str, str]]]:
    """``{precision: {backend: {graph: artifact}}}`` for the backends that run exported files: a precision is
    listed for a backend only when every graph has an artifact the backend loads at it, chosen by
    :func:`edge.runtimes.backend_artifact` (the rule :func:`load_program` follows). What the export records as
    a program's ``precisions`` table, and what stands in for it in a bundle exported before that table existed
    (``edge bench``), so the two can never disagree."""
    from edge.runtimes import backend_artifact
    from edge.runtimes.registry import get_backend, list_backends

    precisions = sorted({a.get("precision") for a in bundle.artifacts if a.get("precision")})
    table: dict[str, dict[str, dict[str, str]]] = {}
    for prec in precisions:
        for backend in list_backends():
            if get_backend(backend).build is not None:  # engines built on the target are added when built
                continue
            try:
                chosen = {g: backend_artifact(bundle, backend, g, prec)["name"] for g in graphs}
            except BundleError:
                continue
            table.setdefault(prec, {})[backend] = chosen
    return table


def _artifact_names(bundle: Any, spec: ProgramSpec, backend: str, precision: str) -> dict[str, str] | None:
    """The artifact of each graph of ``spec`` at ``precision`` on ``backend``, or None when one is missing.

    The manifest's ``programs`` section says it for the backends the export covered (OpenVINO INT8 =
    the NNCF IRs); for the others (engines built on the target) and for older bundles, each graph's
    artifact is looked up by the backend's formats and the precision.
    """
    from edge.errors import BundleError as _BE
    from edge.runtimes import get_backend

    table = bundle.manifest.get("programs", {}).get(spec.name, {}).get("precisions")
    if table is not None and get_backend(backend).build is None:  # the export's record is the answer
        names = table.get(precision, {}).get(backend)
        return dict(names) if names and set(names) == set(spec.graphs) else None
    from edge.runtimes import backend_artifact

    out = {}
    for g in spec.graphs:
        try:
            out[g] = backend_artifact(bundle, backend, g, precision)["name"]
        except _BE:
            return None
    return out


#: where camera images are resized and normalised: the numpy reference, inside the engine, or the
#: engine where the backend and the program can (``edge run --preprocess``)
PREPROCESS = ("numpy", "engine", "auto")


def image_fronts(bundle: Any, spec: ProgramSpec, backend: str, preprocess: str, *, precision: str | None = None,
                 named: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Graph -> the ``ImageInput`` its runtime takes camera bytes for (empty: numpy preprocessing).

    ``engine`` asks for it and says in one line why it cannot be had (a backend without an image front,
    a program whose graphs have no image input, e.g. a whole-clip graph); ``auto`` takes it where it can
    and it pays: on a backend with ``image_front_auto`` (OpenVINO's PrePostProcessor resizes the bytes in
    ~0.3 ms; ONNX Runtime's Resize costs more than the numpy path running beside inference), and on a
    backend whose engines are built on the target (TensorRT) for each graph that has an engine built with
    the front at ``precision`` (someone ran ``edge build --preprocess engine`` for it: the resize then runs
    on the GPU, not on the host's CPU). ``named`` (graph -> artifact the caller chose): those artifacts'
    kind decides under ``auto``, and must match under ``engine``/``numpy`` (an engine built with the front
    takes camera bytes, one built without it preprocessed frames: never one swapped for the other).
    """
    from edge.errors import BackendUnavailable, EdgeError
    from edge.models.contract import recorded_image_inputs
    from edge.runtimes import get_backend

    if preprocess not in PREPROCESS:
        raise EdgeError(f"--preprocess {preprocess!r}: choose one of {', '.join(PREPROCESS)}")
    be = get_backend(backend)
    mine, n_records = recorded_image_inputs(bundle.manifest, spec.graphs, str(bundle.path / "manifest.json"))
    built = be.build is not None  # its artifacts are engines, built with or without the front
    marked = {g: bundle.artifact(name=n).get("preprocess") == "engine" for g, n in (named or {}).items()
              if g in mine} if built else {}
    if preprocess != "auto":
        for g, front in marked.items():
            if front != (preprocess == "engine"):
                raise BundleError(f"{bundle.path}: artifact '{named[g]}' was built "
                                  f"{'with' if front else 'without'} camera preprocessing in the engine; run it "
                                  f"with --preprocess {'engine' if front else 'numpy'} (or name the graph's other "
                                  "engine)")
    if preprocess == "numpy":
        return {}
    can = be.image_front
    if preprocess == "auto":  # per graph: a named engine's kind, else where it pays / where one was built
        if not can:
            return {}
        if be.image_front_auto:
            return mine
        return {g: f for g, f in mine.items() if marked.get(g, built and any(
            a.get("preprocess") == "engine" and a.get("graph") == g and a.get("format") in be.formats
            and (precision is None or a.get("precision") == precision) for a in bundle.artifacts))}
    if not can:
        from edge.runtimes.registry import list_backends

        able = [n for n in list_backends() if get_backend(n).image_front]
        raise BackendUnavailable(f"--preprocess engine: backend '{backend}' cannot preprocess inside the engine "
                                 f"({', '.join(able)} can); use --preprocess numpy")
    if not mine:
        numpy_only = [d for d in (bundle.manifest.get("preprocess") or {}).get("image_inputs_numpy_only") or []
                      if isinstance(d, dict) and d.get("graph") in spec.graphs]
        why = f": {numpy_only[0].get('why')}" if numpy_only else ""
        raise BundleError(f"{bundle.path}: program '{spec.name}' has no camera-image input an engine can take "
                          f"(the bundle records {n_records} image input(s){why}); use --preprocess numpy")
    return mine


#: why ``edge run`` left a gated INT8 aside (said in its summary's notes)
INT8_NOT_CHOSEN = ("fp32, not the bundle's gated INT8: this CPU has no int8 dot-product instructions (VNNI/AMX), "
                   "so INT8 is no faster than fp32 here; --precision int8 runs it anyway")


def float_int8_graphs(bundle: Any, program: str, backend: str) -> list[str]:
    """The graphs a program's int8 runs in float on ``backend``: their int8 artifact has no dequantize node (a
    QDQ graph) or no quantized op (an NNCF IR): the export found no int8 form faster than fp32 there on the CPU
    that built the bundle, or the gate's fallback left them float, so ``edge run`` can say that part of its
    "int8" is fp32."""
    names = (bundle.manifest.get("programs", {}).get(program, {}).get("precisions", {}).get("int8", {})
             .get(backend, {}))
    arts = {a.get("name"): a for a in bundle.artifacts}

    def in_float(name: str) -> bool:
        q = (arts.get(name) or {}).get("quantization") or {}
        return q.get("dequantize_nodes") == 0 or q.get("quantized_ops") == 0

    return [g for g, n in names.items() if in_float(n)]


def default_runtime(bundle: Any, program: str | None = None, precision: str | None = None) -> tuple[str, str, str]:
    """(backend, precision, why) ``edge run`` uses when not told: OpenVINO when it is installed and the bundle
    was exported for it (IRs), at INT8 when that program's OpenVINO INT8 passed the export's gate and this CPU
    has int8 dot-product instructions (without them INT8 is no faster, often slower, and still loses accuracy:
    :func:`edge.bench.machine.int8_pays`);
    else ONNX Runtime. ``precision`` given: that one, on the first of those backends that has it."""
    from edge.runtimes import get_backend

    specs = bundle_programs(bundle, card_for_bundle(bundle))
    spec = next((p for p in specs if p.name == program), specs[0])
    # an int8 entry exists only for gated artifacts (the export writes no int8 that missed its budget; OpenVINO
    # runs the NNCF IRs when their own gate passed, else the gated QDQ graphs)
    table = bundle.manifest.get("programs", {}).get(spec.name, {}).get("precisions", {})
    has_ir = any(a.get("format") == "openvino_ir" and a.get("graph") in spec.graphs for a in bundle.artifacts)
    if has_ir and get_backend("openvino").is_available()[0]:
        if precision is not None:
            if "openvino" in table.get(precision, {}) or not table:
                return "openvino", precision, "OpenVINO is installed and the bundle has its IRs"
        elif "openvino" in table.get("int8", {}):
            from edge.bench.machine import int8_pays

            if int8_pays():
                return "openvino", "int8", "OpenVINO is installed, the bundle has its IRs and its INT8 passed the gate"
            return "openvino", "fp32", INT8_NOT_CHOSEN
        else:
            return "openvino", "fp32", "OpenVINO is installed and the bundle has its IRs (no gated INT8)"
    why = "the bundle has no OpenVINO IRs" if not has_ir else "OpenVINO is not installed"
    if precision is not None and table and "onnxruntime" not in table.get(precision, {}):
        # said of the backends auto picks from: "no int8 on 'onnxruntime'" read as if that had been the choice
        have = sorted({a.get("precision") for a in bundle.artifacts if a.get("precision")})
        if "openvino" in table.get(precision, {}):
            raise BundleError(f"{bundle.path}: program '{spec.name}' has {precision} for OpenVINO, which is not "
                              f"installed here, and none for ONNX Runtime (pip install openvino)")
        ov = "OpenVINO or " if has_ir else ""
        raise BundleError(f"{bundle.path}: program '{spec.name}' has no {precision} for {ov}ONNX Runtime, the "
                          f"backends --backend auto picks from (precisions in the bundle: {', '.join(have)}; reduced "
                          "precisions are made by edge-export --precision, engines by edge build and run with "
                          "--backend tensorrt)")
    return "onnxruntime", precision or "fp32", why


def _check_fronts(b: Any, card: ModelCard, cfg: Config, fronts: Mapping[str, Any]) -> None:
    """BundleError unless each recorded camera input an engine will preprocess by is the one the card makes from the
    bundle's config: the card's preprocessing hands such an input over as camera bytes only when the two are equal,
    so an edited record (a mean, a size) fed normalised floats to an engine that takes bytes ("dtype float32 but
    the model expects uint8", naming neither the manifest nor the field)."""
    from dataclasses import fields

    try:
        own = {s.input: s for s in card.image_inputs(cfg)}
    except Exception:  # a card that cannot say: the engine's record stands, as before
        return
    for g, rec in fronts.items():
        mine = own.get(rec.input)
        if mine is None or mine == rec:
            continue
        diff = [f.name for f in fields(rec) if getattr(rec, f.name) != getattr(mine, f.name)]
        raise BundleError(f"{b.path / 'manifest.json'}: preprocess.image_inputs for graph '{g}' (input "
                          f"'{rec.input}') differs from what model '{card.name}' makes of the bundle's config in "
                          f"{', '.join(diff)}; the manifest was edited: re-export, or run with --preprocess numpy")


def gate_record(b: Any, program: str, backend: str, precision: str) -> dict[str, Any] | None:
    """The manifest's ``programs.<program>.gates.<backend>.<precision>`` record, None where any level is missing or
    not a mapping (a hand-edited manifest: the schema leaves ``gates`` unchecked, and a list there was an
    AttributeError in place of the line saying why the precision is not there)."""
    node: Any = b.manifest
    for key in ("programs", program, "gates", backend, precision):
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def _not_kept(b: Any, program: str, backend: str, precision: str, gate: dict[str, Any]) -> str:
    """Why a precision's gate record says it was not kept: its own budget missed; ``passed`` with a ``why`` (a program
    sharing its graphs missed); or its gates are another program's (``inherited_from``), whose record says which.
    Every record read "it missed the budget", also of a program that passed (drop 0.2 <= 1) beside one that did not."""
    by = gate.get("inherited_from")
    if not by:
        return f"it {_gate_outcome(program, backend, gate)}"
    theirs = gate_record(b, by, backend, precision) if isinstance(by, str) else None
    if isinstance(theirs, dict) and not theirs.get("inherited_from"):
        return f"its graphs' program '{by}' {_gate_outcome(by, backend, theirs)}"
    return (f"its graphs' program '{by}' missed the accuracy budget there at export (the manifest's "
            f"programs.{by}.gates.{backend})")


def _gate_outcome(program: str, backend: str, gate: dict[str, Any]) -> str:
    num = [f"{v:.3g}" if isinstance(v, int | float) else "?" for v in (gate.get("drop"), gate.get("max_drop"))]
    where = f"the manifest's programs.{program}.gates.{backend}"
    if gate.get("passed") is True:
        why = gate.get("why") or "a program sharing its graphs missed the budget"
        return f"passed its budget (drop {num[0]} <= {num[1]}) but was not kept: {why} ({where})"
    return f"missed the accuracy budget there at export (drop {num[0]} > {num[1]}; {where})"


def load_program(bundle: str | os.PathLike[str] | Any, backend: str = "onnxruntime", *,
                 precision: str | None = None, program: str | None = None,
                 artifacts: Mapping[str, str] | None = None, preprocess: str = "numpy",
                 **options: Any) -> Program:
    """A bundle's program on a backend: ``edge.load_program("out/fam", "openvino", precision="int8")``.

    ``precision`` (default fp32) is the same for every graph of the program: the artifacts the
    manifest's ``programs`` section names for it (OpenVINO INT8: the NNCF IRs where the export made
    them). ``program`` defaults to the first of the card's programs the bundle has at that precision
    on that backend (the card lists its preferred one first). ``artifacts`` names each graph's
    artifact instead. ``preprocess`` (:data:`PREPROCESS`): with ``engine`` the graphs whose input is a
    camera image take uint8 frames and resize/normalise inside the engine (:mod:`edge.runtimes.front`);
    the program's ``fronts`` then lists those inputs, for ``edge.data.images.raw_images``.
    """
    from edge.bundle import Bundle
    from edge.runtimes import get_backend, load, require

    b = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
    card = card_for_bundle(b)
    specs = bundle_programs(b, card)
    precision = precision or "fp32"
    from edge.manifest_schema import PRECISIONS

    if precision not in PRECISIONS:  # "INT8" read as a precision the bundle lacks
        raise BundleError(f"precision {precision!r}: use {', '.join(PRECISIONS[:-1])} or {PRECISIONS[-1]}")
    require(backend)
    if program is not None:
        specs = [p for p in specs if p.name == program]
        if not specs:
            raise BundleError(f"{b.path}: no program '{program}' here (has "
                              f"{', '.join(p.name for p in bundle_programs(b, card))})")
    if artifacts is not None and (not isinstance(artifacts, Mapping)
                                  or not all(isinstance(v, str) for v in artifacts.values())):
        raise BundleError(f"artifacts=: a mapping graph -> artifact name (e.g. {{'encoder': 'onnx-int8-encoder'}}), "
                          f"got {type(artifacts).__name__}")
    names: dict[str, str] | None = dict(artifacts) if artifacts else None
    # artifacts named for some graphs: the program that calls exactly those (the first program otherwise)
    spec = next((s for s in specs if names is not None and set(s.graphs) == set(names)), specs[0])
    if names is not None and set(names) != set(spec.graphs):
        missing, unknown = sorted(set(spec.graphs) - set(names)), sorted(set(names) - set(spec.graphs))
        raise BundleError(f"{b.path}: artifacts= names one artifact for each graph of program '{spec.name}' "
                          f"({', '.join(spec.graphs)})" + (f"; missing {', '.join(missing)}" if missing else "")
                          + (f"; not its graphs: {', '.join(unknown)}" if unknown else ""))
    if names is None:
        for s in specs:
            names = _artifact_names(b, s, backend, precision)
            if names is not None:
                spec = s
                break
        else:
            gate = gate_record(b, spec.name, backend, precision)
            if gate is not None and gate.get("kept") is False:
                raise BundleError(f"{b.path}: program '{spec.name}' has no {precision} on '{backend}': "
                                  f"{_not_kept(b, spec.name, backend, precision, gate)}")
            if backend == "torch" and not any(a.get("format") == "checkpoint" for a in b.artifacts):
                raise BundleError(f"{b.path}: the torch backend runs a family's checkpoint, and this bundle has "
                                  "none (edge.export of your own module keeps ONNX only: run the module itself "
                                  "as the torch reference)")
            have = sorted({a.get("precision") for a in b.artifacts if a.get("precision")})
            raise BundleError(f"{b.path}: program '{spec.name}' has no {precision} artifacts for every graph on "
                              f"'{backend}' (precisions in the bundle: {', '.join(have)}; reduced precisions are "
                              "made by edge-export --precision, engines by edge build)")
    runtimes: dict[str, Any] = {}
    cfg = b.manifest["model"].get("config") or {}
    fronts = image_fronts(b, spec, backend, preprocess, precision=precision, named=artifacts)
    if fronts and card is not None:  # the engine preprocesses by the record, the card's code by its config
        _check_fronts(b, card, cfg, fronts)
    # under auto, an engine built with the camera front for another device (or from another ONNX) is no reason
    # to fail: the graph's plain engine runs with numpy preprocessing, as before any front engine was built
    fallback = preprocess == "auto" and not artifacts and get_backend(backend).build is not None
    try:
        for g in spec.graphs:
            try:
                runtimes[g] = load(b, backend, graph=g, artifact=names[g], **options,
                                   **({"front": fronts[g]} if g in fronts else {}))
            except BundleError:
                if not (fallback and g in fronts):
                    raise
                del fronts[g]
                runtimes[g] = load(b, backend, graph=g, artifact=names[g], **options)
        return Program(spec, runtimes, cfg, fronts=tuple(fronts.values()), io_from=f"{b.path}/{MANIFEST}")
    except BaseException:
        for rt in runtimes.values():
            rt.close()
        raise


# ------------------------------------------------------------------------------------ samples


def iter_samples(program: Program, card: ModelCard, samples: Sequence[Sample], where: str = ""
                 ) -> Iterator[tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]]]:
    """Each sample through the program (reset first), in turn: (record, frames, outputs) of its last step. One at
    a time, so a reader's lazily loaded samples (:class:`edge.models.contract.LazySamples`) are let go in turn.
    A frame set the family refuses (its DataError) is named: ``where`` (the caller's data and program, ending in
    ": "), then the sample and frame set."""
    from edge.models.contract import family_code

    cfg = program.cfg
    for k, sample in enumerate(samples):
        program.reset()
        res: dict[str, np.ndarray] = {}
        for j, frames in enumerate(sample):
            try:
                feeds = program.preprocess(card, frames)
            except DataError as e:  # the family's one line for a frame set it cannot use: which one (edge val said
                # only "signal frame is corrupt", naming neither the sample nor where)
                raise DataError(f"{where}sample {k}, frame set {j}: {e}") from e
            with family_code(card.name, f"program '{program.spec.name}'"):
                res = program.step(feeds)
        rec, _ = card.postprocessed(res, sample[-1], cfg)
        yield rec, sample[-1], res


def run_samples(program: Program, card: ModelCard, samples: Sequence[Sample]
                ) -> list[tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]]]:
    """Each sample through the program (reset first); (record, frames, outputs) of its last step."""
    return list(iter_samples(program, card, samples))


def evaluate(program: Program, card: ModelCard, samples: Sequence[Sample], where: str = "",
             items_out: list[Any] | None = None) -> dict[str, Any]:
    """The card's metric of ``program`` on labelled samples: ``{"value": ..., ...}``. Only each sample's metric item
    is kept, not its frames. ``where``: as :func:`iter_samples` takes it. ``items_out`` (a list) receives every
    sample's item in order, None for a sample without a label (what :mod:`edge.intervals` resamples)."""
    from edge.models.contract import family_code

    if card.metric is None:
        raise ModelError(f"model '{card.name}' declares no metric")
    every = [card.metric_item(rec, frames, program.cfg)
             for rec, frames, _ in iter_samples(program, card, samples, where)]
    if items_out is not None:
        items_out.extend(every)
    items = [it for it in every if it is not None]
    if not items:
        raise ModelError(f"model '{card.name}': none of the {len(samples)} samples carries a label")
    with family_code(card.name, f"metric '{card.metric.name}' reduce"):
        return card.metric.score(items)


def torch_program(card: ModelCard, model: Any, cfg: Config, spec: ProgramSpec | None = None) -> Program:
    """A program over the torch modules of a built model (training scores, parity references)."""
    from edge.runtimes import from_module

    spec = spec or card.programs_for(cfg)[0]
    rts = {g: from_module(card.graphs[g].module(model), card.graphs[g].io(cfg)) for g in spec.graphs}
    return Program(spec, rts, cfg)
