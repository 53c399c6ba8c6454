"""``edge run`` on an ETA-VLA bundle from three camera videos (``multi:``) and a typed instruction
(``--command`` TEXT or a schedule FILE): the records equal the program run on the decoded frames with that
instruction; a missing view, views of different sizes, an unknown word: one line, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
cv2 = pytest.importorskip("cv2")

REPO = Path(__file__).resolve().parents[3]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
       "COLUMNS": "200", "NO_COLOR": "1"}
FRAMES = 6


def _edge(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.cli.main", *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three views of a synthetic drive as MJPG .avi files (plus a right view of another size)."""
    from edge.models import get_card

    d = tmp_path_factory.mktemp("views")
    sets = list(get_card("etavla").data.synthetic(FRAMES, (64, 128), 3))
    for name, sensor, size in (("f", "front", None), ("l", "front_left", None), ("r", "front_right", None),
                               ("r_big", "front_right", (160, 80))):
        w = cv2.VideoWriter(str(d / f"{name}.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, size or (128, 64))
        assert w.isOpened()
        for fs in sets:
            img = fs[sensor][0]
            w.write(cv2.resize(img, size) if size else img)
        w.release()
    return d


def _decoded(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, img = cap.read()
        if not ok:
            return out
        out.append(img)


def _expected(bundle: Path, videos: Path, commands: list[str]) -> list[dict]:
    """The program (ORT) run directly on the decoded frames, with the instruction each frame should carry."""
    import edge
    from edge.data.frame import Frame
    from edge.program import load_program

    b = edge.Bundle.load(bundle)
    card = edge.get_card("etavla")
    cfg = b.manifest["model"]["config"]
    views = {s: _decoded(videos / f"{n}.avi") for s, n in (("front", "f"), ("front_left", "l"), ("front_right", "r"))}
    recs = []
    with load_program(b, "onnxruntime") as prog:
        for i in range(FRAMES):
            ins = card.command.parse(commands[i], cfg)
            frames = {s: Frame(v[i], i, i, s, {"instruction": ins} if s == "front" else {}) for s, v in views.items()}
            recs.append(card.postprocess(prog.step(card.preprocess(frames, cfg)), frames, cfg)[0])
    return recs


def _records(out: Path) -> list[dict]:
    return [json.loads(ln) for ln in (out / "trajectories.jsonl").read_text().splitlines()]


def _same(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want) == FRAMES
    for g, w in zip(got, want):
        assert (g["command"], g["text"], g["kept"]) == (w["command"], w["text"], w["kept"])
        assert np.abs(np.array(g["waypoints"]) - np.array(w["waypoints"])).max() <= 2e-3
        assert abs(g["speed"] - w["speed"]) <= 2e-3


def test_three_videos_and_a_typed_instruction(bundle: Path, videos: Path, tmp_path: Path) -> None:
    src = f"multi:front={videos / 'f.avi'},left={videos / 'l.avi'},right={videos / 'r.avi'}"
    r = _edge("run", str(bundle), "--source", src, "--command", "left: take the next left", "--policy", "block",
              "--out", "o", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    _same(_records(tmp_path / "o"), _expected(bundle, videos, ["left: take the next left"] * FRAMES))
    from edge.stream.overlay import readable_frames

    assert readable_frames(tmp_path / "o" / "overlay.mp4", FRAMES) == FRAMES


def test_a_schedule_file_changes_the_instruction_at_its_frame(bundle: Path, videos: Path, tmp_path: Path) -> None:
    (tmp_path / "route.txt").write_text("# frame command\n0 straight: keep lane\n\n3\tright: take the next right\n")
    src = f"multi:front_right={videos / 'r.avi'},front={videos / 'f.avi'},front_left={videos / 'l.avi'}"
    r = _edge("run", str(bundle), "--source", src, "--command", "route.txt", "--policy", "block", "--jsonl", "t.jsonl",
              cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    got = [json.loads(ln) for ln in (tmp_path / "t.jsonl").read_text().splitlines()]
    _same(got, _expected(bundle, videos, ["straight: keep lane"] * 3 + ["right: take the next right"] * 3))


def test_the_api_takes_a_schedule_file_as_a_path(bundle: Path, videos: Path, tmp_path: Path) -> None:
    """edge.stream.run(command=Path(...)) passed the argument check and then failed in len() of a Path."""
    import edge

    (tmp_path / "route.txt").write_text("0 left: take the next left\n")
    src = f"multi:front_right={videos / 'r.avi'},front={videos / 'f.avi'},front_left={videos / 'l.avi'}"
    s = edge.stream.run(bundle, src, command=tmp_path / "route.txt", policy="block", max_frames=2,
                        handle_signals=False)
    assert s["frames"] == 2


@pytest.mark.parametrize(("views", "command", "says"), [
    (("f", "l"), "left", "needs sensor(s) front_right"),
    (("f", "l", "r_big"), "left", "the views differ in size"),
    (("f", "l", "r"), "left: fly to the moon", "the word 'fly' is not in the model's vocabulary"),
    (("f", "l", "r"), "jump", "start with the route command"),
])
def test_bad_views_or_instruction_is_one_line(bundle: Path, videos: Path, tmp_path: Path, views: tuple[str, ...],
                                              command: str, says: str) -> None:
    names = {"f": "front", "l": "left", "r": "right", "r_big": "right"}
    src = "multi:" + ",".join(f"{names[v]}={videos / f'{v}.avi'}" for v in views)
    r = _edge("run", str(bundle), "--source", src, "--command", command, "--out", "o", cwd=tmp_path)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert says in lines[0], lines[0]
    assert not (tmp_path / "o").exists()


def test_a_schedule_file_error_names_the_file_and_line(bundle: Path, videos: Path, tmp_path: Path) -> None:
    (tmp_path / "route.txt").write_text("0 left\n5 stop: stop behind the car ahead\n4 left: take a nap\n")
    src = f"multi:front={videos / 'f.avi'},left={videos / 'l.avi'},right={videos / 'r.avi'}"
    r = _edge("run", str(bundle), "--source", src, "--command", "route.txt", "--out", "o", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip() == "error: route.txt:3: frame 4 does not come after frame 5"
    (tmp_path / "route.txt").write_text("0 left\n5 left: take a nap\n")
    r = _edge("run", str(bundle), "--source", src, "--command", "route.txt", "--out", "o", cwd=tmp_path)
    assert r.returncode == 2 and "route.txt:2 (frame 5)" in r.stderr and "'nap'" in r.stderr, r.stderr
    assert not (tmp_path / "o").exists()


def test_the_synthetic_stream_takes_a_command_too(bundle: Path, tmp_path: Path) -> None:
    r = _edge("run", str(bundle), "--source", "synthetic:4", "--command", "stop", "--jsonl", "t.jsonl", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    recs = [json.loads(ln) for ln in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert [x["command"] for x in recs] == ["stop"] * 4 and recs[0]["text"] == "stop behind the car ahead"
