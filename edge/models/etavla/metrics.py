"""Driving-policy metrics on held-out episodes: ADE/FDE, collisions with other vehicles along the predicted
trajectory, and instruction-following.

- ADE / FDE (m): mean / final Euclidean distance between predicted and true waypoints;
- collision: the ego (two discs of radius 1 m, 1.2 m ahead of and behind its centre, heading from the
  waypoints) overlaps any other vehicle (the same two discs, moving at constant velocity) at a waypoint's
  time; the true trajectories are collision-free by construction (:func:`clear_path`);
- instruction-following: the prediction is closer (ADE) to the commanded path than to the path of every
  other command the road allows in that episode, so "turn left" counts only if it turns left *here*.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from edge.models.etavla.world import DT_WAYPOINT, Episode, Vehicle, labels

DISC_R, DISC_OFF = 1.0, 1.2


def _discs(xy: np.ndarray, heading: np.ndarray) -> np.ndarray:
    """[N, 2 discs, 2] disc centres."""
    d = np.stack([np.cos(heading), np.sin(heading)], -1)[:, None] * np.array([DISC_OFF, -DISC_OFF])[None, :, None]
    return xy[:, None] + d


def headings(xy: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """Heading at each waypoint from the step that reached it (the first from the origin)."""
    prev = np.concatenate([np.zeros((1, 2)) if start is None else start[None], xy[:-1]])
    d = xy - prev
    return np.arctan2(d[:, 1], d[:, 0])


def collides(waypoints: np.ndarray, vehicles: Sequence[Vehicle] | np.ndarray, lane_y: float) -> bool:
    """Does the ego, along ``waypoints`` (ego frame), overlap a vehicle at any waypoint's time?

    ``vehicles``: :class:`Vehicle` s or rows (x, y, heading, speed) in the world frame."""
    t = DT_WAYPOINT * np.arange(1, len(waypoints) + 1)
    ego = _discs(waypoints, headings(waypoints))
    for v in vehicles:
        v = v if isinstance(v, Vehicle) else Vehicle(*(float(a) for a in v[:4]), color=(0.0, 0.0, 0.0))
        x, y = v.at(t)
        other = _discs(np.stack([x, y - lane_y], 1), np.full(len(t), v.heading))
        gap = np.linalg.norm(ego[:, :, None] - other[:, None, :], axis=-1)  # [N, 2, 2]
        if (gap < 2 * DISC_R).any():
            return True
    return False


def clear_path(ep: Episode) -> Episode:
    """The episode without vehicles its true trajectory would hit (they would have yielded)."""
    keep = [v for v in ep.vehicles if not collides(ep.waypoints, [v], ep.lane_y)]
    ep.vehicles = keep
    return ep


def score(pred: np.ndarray, gt: Episode | Mapping[str, Any]) -> dict[str, Any]:
    """One episode's record: ade, fde (m), collision (bool), follows (bool); ``gt``: an episode or its
    :func:`~edge.models.etavla.world.labels` (what a frame's meta carries)."""
    gt = labels(gt) if isinstance(gt, Episode) else gt
    err = np.linalg.norm(pred - np.asarray(gt["waypoints"]), axis=1)
    ade = float(err.mean())
    others = [float(np.linalg.norm(pred - np.asarray(alt), axis=1).mean()) for alt in gt["alternatives"].values()]
    return {"ade": ade, "fde": float(err[-1]), "collision": collides(pred, np.asarray(gt["vehicles"]).reshape(-1, 4),
                                                                     float(gt["lane_y"])),
            "follows": all(ade < o for o in others), "command": gt["command"]}


def fold(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Episodes' records (or folds of them) as one item: sums over episodes, per command too (the card's metric
    fold; ``reduce`` divides)."""
    tot: dict[str, Any] = {"episodes": 0, "ade": 0.0, "fde": 0.0, "collision": 0, "follows": 0, "by_command": {}}
    for i in items:
        n = int(i.get("episodes", 1))  # a record is one episode
        for k in ("ade", "fde"):
            tot[k] += float(i[k])
        for k in ("collision", "follows"):
            tot[k] += int(i[k])
        tot["episodes"] += n
        for c, (cn, cf) in (i["by_command"].items() if "episodes" in i else [(i["command"], (1, int(i["follows"])))]):
            was = tot["by_command"].get(c, (0, 0))
            tot["by_command"][c] = (was[0] + cn, was[1] + cf)
    return tot


def reduce(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over episodes; following rate per command too (a policy that always keeps its lane must show)."""
    t = fold(items)
    n = t["episodes"]
    if not n:
        return {"value": float("nan"), "episodes": 0}
    ade = t["ade"] / n
    return {"value": ade, "episodes": n, "ade": ade, "fde": t["fde"] / n, "collision_rate": t["collision"] / n,
            "follow_rate": t["follows"] / n,
            "by_command": {c: {"episodes": cn, "follow_rate": cf / cn}
                           for c, (cn, cf) in sorted(t["by_command"].items())}}
