"""The family contract: what every model family declares so the toolchain never has to name it.

A family is one folder (``edge/models/<family>/`` for ours, any package for yours) whose ``card.py``
returns a :class:`ModelCard`. Export, the INT8 gate, ``edge bench``, ``edge train``, ``edge run`` and
the Python API read only the card:

- ``graphs``: the exportable pieces (name, IOSpec, how to get the torch module, example inputs);
- ``programs``: the host programs over those graphs (a :class:`Runner` per input: a video model keeps
  a ring buffer of encoder outputs and calls a temporal head; an iterative model encodes once and
  calls a step graph several times). What ``edge run`` executes, what the INT8 gate measures and
  what ``edge bench`` times is a program, not a single graph;
- ``sensors``, ``preprocess`` (frames by sensor -> the step feeds a runner takes), ``postprocess``
  (outputs + frames -> the JSON record and a payload), ``draw`` (payload -> overlay image);
- ``metric`` (scored from records of labelled frames, so training, the gate and a labelled live run
  compute it the same way), ``data`` (synthetic stream and seeded sample sets), ``trainer``.

The card module imports numpy only: a Jetson image without torch imports it for its pre/post-processing.
Only ``build`` (and the trainer's callables) import torch.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, overload

import numpy as np

from edge.errors import BundleError, DataError, EdgeError, ModelError, first_line
from edge.manifest_schema import GRAPH_NAME, check_config
from edge.spec import IOSpec

Config = dict[str, Any]
Feeds = dict[str, np.ndarray]
#: one set of sensor samples (``edge.data.frame.Frame``) by sensor name, as the stream loop matches them
Frames = Mapping[str, Any]
#: a sequence of frame sets fed to a runner in order (after ``reset``); metrics score its last step
Sample = list[dict[str, Any]]


class GraphFn(Protocol):
    """What a runner calls for one graph: named feeds in, named outputs out (a Runtime's ``infer``)."""

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class Runner(Protocol):
    """The host program of a family for one stream of inputs.

    ``step`` takes the feeds ``card.preprocess`` made for one set of frames and returns the outputs
    ``card.postprocess`` decodes; state between steps (ring buffers, the current estimate) lives here
    and is cleared by ``reset`` (a new sequence). Runners call graphs only through the ``GraphFn``s
    they were built with, so the same runner runs torch modules, ONNX Runtime, OpenVINO or TensorRT.
    """

    def reset(self) -> None: ...

    def step(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


@dataclass(frozen=True)
class Graph:
    """One exportable graph: its IOSpec, the torch module computing it, example inputs, a file stem."""

    name: str
    io: Callable[[Config], IOSpec]
    module: Callable[[Any], Any]  # the built model -> the nn.Module computing this graph
    example_inputs: Callable[[Config, int, int], Feeds]  # (cfg, batch, seed) -> random feeds
    role: str = ""  # what it is for, shown by `edge models` ("whole clip", "per frame", ...)
    file: str = ""  # file stem in the bundle (default: the graph name)

    @property
    def stem(self) -> str:
        return self.file or self.name


@dataclass(frozen=True)
class ProgramSpec:
    """A host program: which graphs it calls and the runner factory that calls them."""

    name: str
    graphs: tuple[str, ...]
    runner: Callable[[Mapping[str, GraphFn], Config], Runner]
    description: str = ""
    #: whether a config has this program (None: every config has it). A graph that exists only under some
    #: configs (a stage an option adds, absent from checkpoints made before it) is in programs only those
    #: configs have; export takes the available ones, a torch program the first available
    available: Callable[[Config], bool] | None = None
    #: host stages the runner runs besides its graphs (e.g. an alignment on the host): their feeds are made for
    #: this program only (:func:`feeds_wanted` answers True for these names as for its graphs)
    host_stages: tuple[str, ...] = ()
    #: another program of the card whose reduced-precision gates stand for this one's at export, when both are
    #: exported: this program calls only that one's graphs and adds host work that makes scoring it far
    #: dearer (an edge alignment of ~1 s a sample made one family's INT8 export 22 min instead of 4). Its gates
    #: are recorded as inherited; ``edge-export --score-every-program`` scores it on its own instead
    gated_by: str | None = None

    def available_for(self, cfg: Config) -> bool:
        return self.available is None or bool(self.available(cfg))


#: the graphs of the program whose feeds ``preprocess`` is making (None: not said, so every feed)
_FEEDS_FOR: ContextVar[frozenset[str] | None] = ContextVar("edge_feeds_for", default=None)


@contextmanager
def feeds_for(graphs: Iterable[str]) -> Iterator[None]:
    """Inside this block a family's ``preprocess`` makes feeds for a program that calls only ``graphs``
    (``edge.program.Program.preprocess`` opens it), so host work only another program's graph reads is
    skipped (:func:`feeds_wanted`)."""
    token = _FEEDS_FOR.set(frozenset(graphs))
    try:
        yield
    finally:
        _FEEDS_FOR.reset(token)


def feeds_wanted(graph: str) -> bool:
    """Whether the feeds being made may reach ``graph`` (a graph or a program's host stage): True outside
    :func:`feeds_for` (a caller that does not name its program, such as the INT8 calibration set of every
    program, gets every feed), else whether the program calls it. A ``preprocess`` asks this before host work
    that only one optional graph or stage reads."""
    graphs = _FEEDS_FOR.get()
    return graphs is None or graph in graphs


@dataclass(frozen=True)
class Sensors:
    """The sensors a family reads: ``required[0]`` is the primary one, which paces the loop.

    ``points`` names those of them that take point clouds (a LiDAR): ``edge run --lidar`` feeds only these (a
    family that names none takes no ``--lidar``, unless it reads a sensor called ``lidar``), and a camera source
    (a video, a ``multi:`` part) is never bound to one. Why: sources are bound to a family's sensors by name, then
    by order, and by order alone a LiDAR could feed a side camera, or a folder of images a LiDAR slot.
    """

    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    points: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        stray = [p for p in self.points if p not in (*self.required, *self.optional)]
        if stray:
            raise ModelError(f"sensors: points {stray} are not among the sensors {[*self.required, *self.optional]}")

    @property
    def primary(self) -> str:
        return self.required[0]


@dataclass(frozen=True)
class Command:
    """A text command the family reads beside its frames: a driving instruction, a prompt.

    ``edge run --command TEXT|FILE`` gives one for the whole run or a schedule by frame; the stream
    puts ``parse(text, cfg)`` into the primary sensor's ``meta[key]`` (replacing what a source carried),
    so preprocess, the record, the metric and the overlay all read the same value. ``parse`` raises a
    DataError for a text the model cannot take (an unknown word, too long), and ``edge run`` calls it
    for every entry before the first frame is read. ``help`` says what a text looks like.
    """

    key: str
    parse: Callable[[str, Config], Any]
    help: str = ""


@dataclass(frozen=True)
class ImageInput:
    """A graph input that is one camera image, normalised: ``(rgb / 255 - mean) / std`` at ``size_hw``.

    Declaring it lets a backend take the camera's own bytes instead (``edge run --preprocess engine``):
    OpenVINO folds resize, colour order and normalisation into the compiled model
    (PrePostProcessor), ONNX Runtime runs an ONNX front (Resize + Cast + normalise) before the graph,
    and the input becomes uint8 [1, H, W, 3] BGR of whatever size the camera has. The numpy path
    (:func:`edge.data.images.image_feed`, which the card's ``preprocess`` calls with this record) stays
    the reference both are tested against. ``mean`` / ``std`` are per RGB channel, in 0..1 units.
    """

    graph: str
    input: str
    size_hw: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def to_dict(self) -> dict[str, Any]:
        return {"graph": self.graph, "input": self.input, "size_hw": list(self.size_hw), "mean": list(self.mean),
                "std": list(self.std), "color": "RGB", "scale": 1 / 255, "layout": "C,H,W",
                "camera": {"dtype": "uint8", "layout": "H,W,C", "color": "BGR"}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ImageInput:
        """The record a manifest keeps (``preprocess.image_inputs``); a malformed one is a ModelError."""
        try:
            h, w = (int(v) for v in d["size_hw"])
            mean = tuple(float(v) for v in d["mean"])
            std = tuple(float(v) for v in d["std"])
            if len(mean) != 3 or len(std) != 3 or min(std) <= 0 or h < 1 or w < 1:
                raise ValueError
            return cls(str(d["graph"]), str(d["input"]), (h, w), mean, std)  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError, AttributeError):
            which = f"graph '{d.get('graph')}'" if isinstance(d, Mapping) else f"a {type(d).__name__}"
            raise ModelError(f"preprocess.image_inputs record of {which!s:.80}: needs graph, input, size_hw [h, w], "
                             "mean and std (3 numbers each, std > 0)") from None


@contextmanager
def family_code(family: str, part: str) -> Iterator[None]:
    """A family's own code (its runner, postprocess, metric, draw) that raises is one ModelError naming the family
    and the part (the exception chained for the API): a user's family with a bug in its postprocess gave ``edge
    val``, ``edge bench`` and the INT8 gate a traceback, and ``edge run`` "postprocess failed" for its draw.
    Our own errors (EdgeError) pass as they are."""
    try:
        yield
    except (EdgeError, ImportError, OSError):  # ours; a missing extra (the CLI says which pip line); the machine's
        raise
    except Exception as e:
        who = f"model '{family}'" if family else "the model family"
        raise ModelError(f"{who}: {part} raised {type(e).__name__}: {first_line(e)}") from e


def record_and_payload(family: str, out: Any) -> tuple[dict[str, Any], Any]:
    """A card's ``postprocess`` result, checked: ``(record dict, payload)``."""
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], dict)):
        got = f"a {len(out)}-tuple" if isinstance(out, tuple) else f"a {type(out).__name__}"
        raise ModelError(f"model '{family}': postprocess must return (record dict, payload), got {got}")
    return out


def recorded_image_inputs(manifest: Mapping[str, Any], graphs: Any, where: str = "manifest.json"
                          ) -> tuple[dict[str, ImageInput], int]:
    """(graph -> its recorded ``ImageInput``, for the ``graphs`` given; how many the manifest records in all):
    what ``edge run`` and ``edge build`` read from ``manifest.preprocess.image_inputs``."""
    pre = manifest.get("preprocess") or {}
    records = pre.get("image_inputs") if isinstance(pre, Mapping) else None
    records = records or []
    if not isinstance(records, list):  # a hand-edited manifest: 5 was a TypeError traceback
        raise BundleError(f"{where}: preprocess.image_inputs: a list of records, got {type(records).__name__}")
    try:
        mine = {s.graph: s for s in (ImageInput.from_dict(d) for d in records) if s.graph in graphs}
    except ModelError as e:  # a hand-edited manifest: say which file
        raise BundleError(f"{where}: {e}") from None
    graph_records = manifest.get("graphs")
    for g, rec in mine.items():  # an input renamed in one place: the engine said "not an input", naming no file
        graph = graph_records.get(g) if isinstance(graph_records, Mapping) else None
        ins = graph.get("inputs") if isinstance(graph, Mapping) else None
        names = [t.get("name") for t in ins if isinstance(t, Mapping)] if isinstance(ins, list) else []
        if names and rec.input not in names:
            raise BundleError(f"{where}: preprocess.image_inputs names input {rec.input!r} of graph '{g}', which "
                              f"graphs.{g}.inputs does not have ({', '.join(map(repr, names))}); the manifest was "
                              "edited: re-export")
    return mine, len(records)


#: how many metric items a labelled live run keeps before it folds them into one (``Metric.fold``)
FOLD_EVERY = 256


def percent_per_sample(n: int) -> float:
    """A rate in percent over ``n`` samples moves by 100 / n when one sample passes or fails
    (a :class:`Metric` ``quantum``)."""
    return 100.0 / max(int(n), 1)


def _no_images(_cfg: Config) -> tuple[ImageInput, ...]:
    return ()


def _budget_ok(value: Any) -> bool:
    """Whether ``value`` is a precision gate budget: a finite number >= 0, or "N%" with N finite >= 0."""
    if isinstance(value, bool):
        return False
    text = str(value).strip()
    try:
        v = float(text[:-1] if text.endswith("%") else text)
    except ValueError:
        return False
    return math.isfinite(v) and v >= 0


@dataclass(frozen=True)
class Metric:
    """The task metric, computed from records so every path scores alike.

    ``item(record, frames, cfg)`` turns one postprocessed record of a labelled frame set into what
    ``reduce`` needs (None when the frames carry no label); ``reduce(items)`` returns at least
    ``{"value": float}``. ``bounds`` is the metric's range when it has one (the contract tests check
    every program's score lies in it). ``max_drop`` is the reduced-precision gate's budget when the
    export names none: metric units, or ``"N%"`` of the fp32 value for a metric with no fixed scale (one
    point of a percentage is small; one metre of a trajectory error of 3 m is not).

    ``quantum`` is for a metric that scores each sample pass or fail (a rate, such as the share of frames
    within a tolerance): ``quantum(n)`` is how far one sample's outcome moves it over ``n`` samples
    (:func:`percent_per_sample`, 100 / n). Why: such a metric moves in steps, and a gate whose one step is
    over its budget fails on any sample that changes; the export sizes its evaluation set from it. None
    (the default) for a metric whose samples move it by degrees (an accuracy over points, an error).

    ``fold(items)`` returns one item that ``reduce`` scores as it scores ``items`` (so
    ``reduce([fold(a), *b]) == reduce(a + b)``, and a folded item may be folded again): per-frame sums, or
    the per-frame numbers as one array where the metric needs them all (a median). Why: a labelled live run
    scores every frame set as it passes, and without a fold it keeps every item for the run's final score
    (an item that holds a frame's detections and labels as lists of floats grew a run by 13 MB every
    1,000 frames); with one, the loop folds its items every :data:`FOLD_EVERY`. None keeps every item.
    """

    name: str
    item: Callable[[dict[str, Any], Frames, Config], Any]
    reduce: Callable[[list[Any]], dict[str, Any]]
    unit: str = ""
    higher_is_better: bool = True
    bounds: tuple[float, float] | None = None
    max_drop: float | str = 1.0
    quantum: Callable[[int], float] | None = None
    fold: Callable[[list[Any]], Any] | None = None

    def score(self, items: list[Any]) -> dict[str, Any]:
        """``reduce(items)``, checked: a family's reduce that returns no number under ``"value"`` is one line
        naming the metric, not a KeyError at the end of a training run or inside the precision gate."""
        out = self.reduce(items)
        value = out.get("value") if isinstance(out, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
            got = f"a {type(out).__name__}" if not isinstance(out, dict) else f"keys {sorted(map(str, out))[:6]}"
            raise ModelError(f"metric '{self.name}': reduce() must return a dict with a number under 'value', "
                             f"got {got}")
        return {**out, "value": float(value)}

    def drop(self, reference: float, value: float) -> float:
        """How much worse ``value`` is than ``reference`` (positive = worse), in the metric's units."""
        return reference - value if self.higher_is_better else value - reference

    def format(self, value: float) -> str:
        return f"{self.name} {value:.2f}{self.unit}"


class LazySamples(Sequence[Sample]):
    """``n`` samples a reader has listed (and checked) up front, each loaded only when it is asked for.

    Why: a real labelled set is large (a dataset's label file names thousands of 1280x720 frames, gigabytes as
    pixels), and ``--calib`` uses a few dozen of them, ``edge val`` one at a time: a reader that returned a list of
    loaded frames held the whole set in memory. ``load(i)`` returns sample ``i`` (a problem with that one file is
    its one-line DataError); a slice is a list of loaded samples."""

    def __init__(self, n: int, load: Callable[[int], Sample], family: str = "") -> None:
        self._n = int(n)
        self._load_fn = load
        self.family = family  # named when ``load`` fails in a way of its own (not its DataError)

    def _load(self, j: int) -> Sample:
        with family_code(self.family, f"labelled reader's load of sample {j}"):
            return self._load_fn(j)

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, i: int) -> Sample: ...

    @overload
    def __getitem__(self, i: slice) -> list[Sample]: ...

    def __getitem__(self, i: int | slice) -> Sample | list[Sample]:
        if isinstance(i, slice):
            return [self._load(j) for j in range(*i.indices(self._n))]
        j = operator.index(i)
        j = j + self._n if j < 0 else j
        if not 0 <= j < self._n:
            raise IndexError(f"sample {i} of {self._n}")
        return self._load(j)


def chain_samples(parts: Iterable[Sequence[Sample]]) -> Sequence[Sample]:
    """Several readers' samples as one sequence, still loaded one at a time where a part is lazy."""
    parts = list(parts)
    if all(isinstance(p, list) for p in parts):
        return [s for p in parts for s in p]
    starts = np.cumsum([0, *(len(p) for p in parts)])

    def load(i: int) -> Sample:
        k = int(np.searchsorted(starts, i, side="right")) - 1
        return parts[k][i - int(starts[k])]

    return LazySamples(int(starts[-1]), load)


@dataclass(frozen=True)
class LabelledData:
    """A family's reader of labelled real data in its own format, for ``edge val --data PATH[,key=value...]``.

    ``read(path, cfg, **options)`` returns the labelled :data:`Sample` sequences the card's metric scores (labels in
    the frames' meta, as the synthetic samples carry them): a list, or a :class:`LazySamples` that lists and checks
    the set up front and loads a sample when it is asked for (what a reader of a large set should do); ``options``
    are the spec's ``key=value`` strings, which the family parses itself (a bad value is a one-line DataError; an
    unknown key is a TypeError, reported as a bad spec). ``formats`` says in one line what ``path`` may be and which
    options there are (``edge models`` shows it). Why on the card: only the family knows its label format (a
    dataset's label file, a sensor folder whose own calibration is the truth), and ``edge val`` must score a user's
    family as it scores ours.
    """

    formats: str
    read: Callable[..., Sequence[Sample]]


@dataclass(frozen=True)
class FamilyData:
    """The family's data: a synthetic stream for ``edge run --source synthetic`` and seeded sample sets.

    ``synthetic(n, hw, seed, **options)`` yields ``n`` frame sets as ``{sensor: (data, meta)}`` (labels in
    meta); ``hw`` is None for the family's default size; ``options`` come from the source spec
    (``synthetic:N,key=value``) as strings, which the family parses itself (a bad value is a one-line
    DataError), and an unknown one is a TypeError, reported as a bad spec.
    ``samples(cfg, role, n, seed)`` returns ``n`` :data:`Sample` sequences for ``role`` "evaluation" or
    "calibration", from disjoint seed streams.
    ``sequence_length(cfg)`` is how many consecutive video frames make one calibration sample.
    ``labelled`` reads real labelled data in the family's format (:class:`LabelledData`), None when it has none.
    """

    synthetic: Callable[..., Iterator[dict[str, tuple[Any, dict[str, Any]]]]]
    samples: Callable[[Config, str, int, int], list[Sample]]
    sequence_length: Callable[[Config], int] = lambda _cfg: 1
    labelled: LabelledData | None = None


@dataclass(frozen=True)
class Trainer:
    """What the shared training loop (:mod:`edge.models.training`) needs from a family.

    ``batches(cfg, batch, seed)`` is an endless, seeded iterator of numpy batches (one that also takes a
    ``frozen`` keyword gets the submodule names ``edge train --freeze`` gave, so it can leave out what only
    those read); ``loss(model, batch)`` returns (scalar tensor, parts for the log). The loop owns the
    optimizer (AdamW, one-cycle LR, gradient clipping), seeding, background batch rendering and progress.
    """

    batches: Callable[[Config, int, int], Iterator[dict[str, np.ndarray]]]
    loss: Callable[[Any, dict[str, np.ndarray]], tuple[Any, dict[str, float]]]
    lr: float = 2e-3
    weight_decay: float = 1e-4
    clip_grad: float = 5.0
    #: the files a config's batches read besides the code (the real layouts a renderer draws on), by name:
    #: ``edge train`` records each one's path and sha256, since the same command on another file trains another
    #: model (two layouts files gave different losses under identical records)
    data_files: Callable[[Config], dict[str, Any]] | None = None
    #: what a config must hold to be trained on, beyond the card's ``config_rules`` (ValueError saying which): values
    #: only training reads (the share of clips a renderer draws on real layouts), checked before the first step and
    #: never when a checkpoint or bundle is loaded, so weights trained with a value since refused still export
    check: Callable[[Config], None] | None = None


def _no_draw(_payload: Any, _frames: Frames, _cfg: Config) -> np.ndarray | None:
    return None


def _no_params(_cfg: Config) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class ModelCard:
    """Everything the toolchain knows about one family (see the module docstring)."""

    name: str
    description: str
    configs: dict[str, Config]
    default_config: str
    build: Callable[[Config], Any]
    graphs: dict[str, Graph]
    programs: tuple[ProgramSpec, ...]
    sensors: Sensors
    preprocess: Callable[[Frames, Config], Feeds]
    postprocess: Callable[[dict[str, np.ndarray], Frames, Config], tuple[dict[str, Any], Any]]
    draw: Callable[[Any, Frames, Config], np.ndarray | None] = _no_draw
    preprocess_params: Callable[[Config], dict[str, Any]] = _no_params
    metric: Metric | None = None
    data: FamilyData | None = None
    trainer: Trainer | None = None
    checkpoints: dict[str, Path] = field(default_factory=dict)  # config name -> shipped weights
    results_name: str = "results"  # `edge run --out DIR` writes DIR/<results_name>.jsonl
    #: families that estimate the rig's LiDAR-to-camera extrinsic name the record key holding it
    #: (a 4x4 list); ``edge calibrate`` runs such a bundle and combines the frames' estimates
    rig_output: str | None = None
    #: the family reads a camera-LiDAR rig with every frame set (``edge run --calib``, or a source that brings its
    #: own, a KITTI folder): a run without either is refused before its first frame (every frame set was skipped,
    #: said only when the whole stream had been read)
    needs_rig: bool = False
    #: the config tests and CI use (seconds on 2 CPU cores); "" (the default): ``tiny`` where the card has one, else
    #: its ``default_config`` (a user's family need not name a config as ours do)
    test_config: str = ""
    #: config keys added after checkpoints had shipped, with the value that means what a config
    #: without the key did; a checkpoint lacking them gets these values when it is loaded (so its
    #: bundle states them), instead of the newest configs' defaults
    config_added: dict[str, Any] = field(default_factory=dict)
    #: config keys an export may set (``edge-export --set KEY=VALUE``) because the weights do not depend
    #: on them (a pruning keep ratio, a decoding threshold), with what each means; one checkpoint then
    #: gives a bundle per setting, each stating its value in its config
    export_options: dict[str, str] = field(default_factory=dict)
    #: the text command the family takes with its frames (``edge run --command``), None when it takes none
    command: Command | None = None
    #: graph inputs that are one normalised camera image (:class:`ImageInput`): a backend may then take
    #: the camera's bytes and preprocess inside the engine; the manifest records them
    image_inputs: Callable[[Config], tuple[ImageInput, ...]] = _no_images
    #: optional: several steps' outputs decoded at once ([outputs], [frames], cfg) -> [(record, payload)],
    #: each equal to ``postprocess`` of that step (a family whose decoding vectorises across frames gives
    #: it: the stream loop's ``block`` mode then decodes the results that are ready together, paying
    #: numpy's per-call cost once per batch instead of once per frame while the runtime has the cores).
    #: A card made from another with a different ``postprocess`` must replace or clear this too.
    postprocess_many: Callable[[list[dict[str, np.ndarray]], list[Frames], Config],
                               list[tuple[dict[str, Any], Any]]] | None = None
    #: optional: what a config must satisfy beyond the type and bounds every key is checked for (relations
    #: between keys, a vocabulary's special tokens): raises ValueError saying what is wrong. Bundles and
    #: checkpoints are checked with it before anything is built from their config.
    config_rules: Callable[[Config], None] | None = None

    def _field_types(self) -> list[str]:
        """What a card's fields hold, checked before anything reads them: a family that passed ``sensors="camera"``
        got "AttributeError: 'str' object has no attribute 'required'" from deep inside the core."""
        problems = []
        kinds: tuple[tuple[str, Any, str], ...] = (
            ("name", str, "a string"), ("description", str, "a string"), ("default_config", str, "a string"),
            ("test_config", str, "a string"), ("results_name", str, "a string"),
            ("configs", Mapping, "a mapping of config name -> dict"),
            ("graphs", Mapping, "a mapping of graph name -> Graph"),
            ("programs", tuple | list, "a tuple of ProgramSpec"), ("sensors", Sensors, "edge.models.Sensors"),
            ("checkpoints", Mapping, "a mapping of config name -> path"), ("config_added", Mapping, "a mapping"),
            ("export_options", Mapping, "a mapping of key -> what it means"),
            ("metric", Metric | None, "edge.models.Metric or None"),
            ("data", FamilyData | None, "edge.models.FamilyData or None"),
            ("trainer", Trainer | None, "edge.models.Trainer or None"),
            ("command", Command | None, "edge.models.Command or None"),
            ("rig_output", str | None, "a string or None"), ("needs_rig", bool, "True or False"))
        for fname, kind, what in kinds:
            value = getattr(self, fname)
            if not isinstance(value, kind):
                problems.append(f"{fname} must be {what}, got {type(value).__name__}")
        for fname in ("build", "preprocess", "postprocess", "draw", "preprocess_params", "image_inputs"):
            if not callable(getattr(self, fname)):
                problems.append(f"{fname} must be a function, got {type(getattr(self, fname)).__name__}")
        for fname in ("postprocess_many", "config_rules"):
            if getattr(self, fname) is not None and not callable(getattr(self, fname)):
                problems.append(f"{fname} must be a function or None, got {type(getattr(self, fname)).__name__}")
        if isinstance(self.configs, Mapping):
            problems += [f"config '{k}' must be a mapping, got {type(v).__name__}" for k, v in self.configs.items()
                         if not isinstance(v, Mapping)][:1]
        if isinstance(self.graphs, Mapping):
            problems += [f"graph '{k}' must be edge.models.Graph, got {type(v).__name__}"
                         for k, v in self.graphs.items() if not isinstance(v, Graph)][:1]
        if isinstance(self.programs, tuple | list):
            problems += [f"programs must hold edge.models.ProgramSpec, got {type(p).__name__}" for p in self.programs
                         if not isinstance(p, ProgramSpec)][:1]
        return problems

    @property
    def test_config_name(self) -> str:
        """The config tests and CI use: ``test_config`` when set, else ``tiny`` where the card has one, else the
        default (resolved here, not stored: a card copied with ``dataclasses.replace`` and other configs keeps
        resolving against its own)."""
        return self.test_config or ("tiny" if "tiny" in self.configs else self.default_config)

    def __post_init__(self) -> None:
        typed = self._field_types()
        if typed:  # the checks below read these fields
            raise ModelError(f"family '{self.name}': " + "; ".join(typed))
        problems = []
        for what, key in (("default", self.default_config), ("test", self.test_config_name)):
            if key not in self.configs:
                problems.append(f"{what} config '{key}' is not in configs {sorted(self.configs)}")
        names = [p.name for p in self.programs]
        if len(set(names)) != len(names):
            problems.append(f"program names repeat: {names}")
        if not self.programs:
            problems.append("declares no program")
        for p in self.programs:
            missing = [g for g in p.graphs if g not in self.graphs]
            if missing or not p.graphs:
                problems.append(f"program '{p.name}' calls unknown graphs {missing or '(none)'}")
            if p.gated_by is not None:
                by = next((q for q in self.programs if q.name == p.gated_by and q.name != p.name), None)
                if by is None:
                    problems.append(f"program '{p.name}' is gated_by '{p.gated_by}', not another program here")
                elif not set(p.graphs) <= set(by.graphs) or by.gated_by is not None:
                    problems.append(f"program '{p.name}' is gated_by '{by.name}', which must call all its graphs "
                                    "and be gated itself")
        for gname, g in self.graphs.items():
            if g.name != gname:
                problems.append(f"graph key '{gname}' names graph '{g.name}'")
            if not GRAPH_NAME.match(gname):  # found here, not when the bundle is committed after the export
                problems.append(f"graph name '{gname}' must be letters, digits, '_', '-' or '.' (file names)")
        if len({g.stem for g in self.graphs.values()}) != len(self.graphs):
            problems.append("two graphs share a file stem")
        if not self.sensors.required:
            problems.append("needs at least one required sensor")
        if not GRAPH_NAME.fullmatch(self.results_name):  # `edge run --out DIR` writes DIR/<results_name>.jsonl
            problems.append(f"results_name '{self.results_name}' must be letters, digits, '_', '-' or '.' "
                            "(a file name)")
        if self.metric is not None and not _budget_ok(self.metric.max_drop):
            problems.append(f"metric max_drop {self.metric.max_drop!r} must be a number >= 0 in the metric's "
                            "units or a percentage such as '5%'")
        if self.metric is not None and self.metric.quantum is not None and not callable(self.metric.quantum):
            problems.append(f"metric quantum {self.metric.quantum!r} must be a function of the sample count")
        if self.metric is not None and self.metric.fold is not None and not callable(self.metric.fold):
            problems.append(f"metric fold {self.metric.fold!r} must be a function of a list of items")
        if problems:
            raise ModelError(f"family '{self.name}': " + "; ".join(problems))

    def make(self, cfg: Config) -> Any:
        """``build(cfg)``, with a failure of the family's own code one line naming the family (a config key the
        model reads that its configs lack was a KeyError traceback out of ``edge-export`` and ``edge train``).
        A missing package (ImportError) and our own errors pass through as they are."""
        try:
            return self.build(cfg)
        except (EdgeError, ImportError, MemoryError, KeyboardInterrupt):
            raise
        except Exception as e:
            hint = "; a config key the model reads that the config lacks?" if isinstance(e, KeyError) else ""
            raise ModelError(f"model '{self.name}': building the model failed ({type(e).__name__}: "
                             f"{first_line(e)}){hint}") from None

    def preprocessed(self, frames: Frames, cfg: Config) -> Feeds:
        """``preprocess(frames, cfg)`` after checking that ``frames`` has every required sensor: a family indexes
        them, so a missing camera was a bare KeyError from the API (``edge run`` binds sources to sensors first)."""
        if not isinstance(frames, Mapping):
            raise DataError(f"model '{self.name}': frames are a mapping of sensor -> Frame, got "
                            f"{type(frames).__name__}")
        missing = [s for s in self.sensors.required if s not in frames]
        if missing:
            raise DataError(f"model '{self.name}': no frame for sensor(s) {', '.join(missing)} (given: "
                            f"{', '.join(map(str, frames)) or 'none'}; it reads {', '.join(self.sensors.required)})")
        from edge.data.frame import Frame

        bare = [s for s in self.sensors.required if not isinstance(frames[s], Frame)]
        if bare:  # a bare array: the family reads frame.data and frame.meta
            raise DataError(f"model '{self.name}': sensor {bare[0]}: a Frame (edge.data.frame.Frame), got "
                            f"{type(frames[bare[0]]).__name__}")
        with family_code(self.name, "preprocess"):  # its DataError (an unusable frame set) passes as it is
            return self.preprocess(frames, cfg)

    def postprocessed(self, out: Mapping[str, np.ndarray], frames: Frames, cfg: Config) -> tuple[dict[str, Any], Any]:
        """``postprocess(out, frames, cfg)``, checked as :meth:`make` checks ``build``: a failure of the family's own
        code is one line naming the family (:func:`family_code`), a result that is not (record, payload) too."""
        with family_code(self.name, "postprocess"):
            return record_and_payload(self.name, self.postprocess(out, frames, cfg))

    def metric_item(self, record: dict[str, Any], frames: Frames, cfg: Config) -> Any:
        """``metric.item(record, frames, cfg)``, a failure of it one line naming the family and the metric."""
        assert self.metric is not None
        with family_code(self.name, f"metric '{self.metric.name}' item"):
            return self.metric.item(record, frames, cfg)

    def metric_fold(self, items: list[Any]) -> list[Any]:
        """``[metric.fold(items)]``, or ``items`` as they are for a metric without a fold; a failure of the fold is
        one line naming the family and the metric."""
        assert self.metric is not None
        if self.metric.fold is None or len(items) < 2:
            return items
        with family_code(self.name, f"metric '{self.metric.name}' fold"):
            return [self.metric.fold(items)]

    def config(self, name_or_cfg: str | Config | None = None) -> Config:
        """A copy of a named config (default: ``default_config``), or of a config dict as given."""
        if isinstance(name_or_cfg, dict):
            return dict(name_or_cfg)
        key = name_or_cfg or self.default_config
        if key not in self.configs:
            raise ModelError(f"model '{self.name}' has no config '{key}' (configs: {sorted(self.configs)})")
        return dict(self.configs[key])

    @property
    def draws(self) -> bool:
        """Whether the card gives a ``draw`` (an overlay for ``edge run --save/--display``): without one those
        options have nothing to show, and a run is refused before it starts rather than writing nothing."""
        return self.draw is not _no_draw

    @property
    def default_checkpoint(self) -> Path | None:
        """The shipped weights of the default config, when present in this installation."""
        p = self.checkpoints.get(self.default_config)
        return p if p is not None and p.is_file() else None

    def checkpoint_for(self, config: str | None) -> Path | None:
        p = self.checkpoints.get(config or self.default_config)
        return p if p is not None and p.is_file() else None

    def with_options(self, cfg: Config, options: Mapping[str, Any]) -> Config:
        """``cfg`` with export options applied; a key the card does not declare is a ModelError."""
        bad = [k for k in options if k not in self.export_options]
        if bad:
            have = ", ".join(sorted(self.export_options)) or "none"
            raise ModelError(f"model '{self.name}': --set {bad[0]} is not an export option (options: {have})")
        import json

        # `--set mode=3` reads 3 as JSON: for a key the config holds as text, it is the text "3"
        merged = {**cfg, **{k: json.dumps(v) if isinstance(cfg.get(k), str) and isinstance(v, int | float) else v
                            for k, v in options.items()}}
        given = " ".join(f"{k}={json.dumps(v)}" for k, v in options.items())
        try:  # the checks edge run makes of the bundle's config, now: no export of a bundle it would refuse
            check_config(merged, self, f"--set {given}")
        except BundleError as e:  # the option's own description says its range (the generic check only a bound)
            meant = "".join(f"; {k}: {self.export_options[k]}" for k in options if f"model.config.{k}'" in str(e))
            raise ModelError(f"model '{self.name}': {e}{meant}") from None
        return merged

    def program(self, name: str) -> ProgramSpec:
        for p in self.programs:
            if p.name == name:
                return p
        raise ModelError(f"model '{self.name}' has no program '{name}' (programs: "
                         f"{', '.join(p.name for p in self.programs)})")

    def programs_for(self, cfg: Config) -> list[ProgramSpec]:
        """The programs ``cfg`` has, in preference order (every config has at least the last)."""
        out = [p for p in self.programs if p.available_for(cfg)]
        if not out:
            raise ModelError(f"model '{self.name}': no program is available for this config")
        return out

    def graphs_of(self, programs: list[str] | tuple[str, ...]) -> list[str]:
        """The graphs the named programs call, in the card's graph order (each once)."""
        want = {g for name in programs for g in self.program(name).graphs}
        return [g for g in self.graphs if g in want]
