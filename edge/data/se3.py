"""Rigid transforms (numpy): the se(3) exponential and logarithm, seeded perturbations, pose errors.

Extrinsic refinement works in the tangent space: a model predicts an increment xi = (omega, v) and the
estimate is updated as ``T <- exp(xi) @ T``; robust averaging of many frames' estimates takes a median
of their logarithms. Conventions: ``xi[..., :3]`` is the rotation vector (radians), ``xi[..., 3:]`` the
translational part (metres); transforms are 4x4 homogeneous, row-major.
"""

from __future__ import annotations

import numpy as np

from edge.errors import DataError


def hat(w: np.ndarray) -> np.ndarray:
    """[..., 3] -> [..., 3, 3] skew-symmetric matrices (hat(w) @ x = w x x)."""
    w = np.asarray(w, np.float64)
    z = np.zeros(w.shape[:-1])
    return np.stack([np.stack([z, -w[..., 2], w[..., 1]], -1),
                     np.stack([w[..., 2], z, -w[..., 0]], -1),
                     np.stack([-w[..., 1], w[..., 0], z], -1)], -2)


def _coeffs(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """sin(t)/t, (1-cos t)/t^2, (t-sin t)/t^3 with their series near 0."""
    small = theta < 1e-4
    t = np.where(small, 1.0, theta)
    a = np.where(small, 1 - theta**2 / 6, np.sin(t) / t)
    b = np.where(small, 0.5 - theta**2 / 24, (1 - np.cos(t)) / t**2)
    c = np.where(small, 1 / 6 - theta**2 / 120, (t - np.sin(t)) / t**3)
    return a, b, c


def exp_so3(w: np.ndarray) -> np.ndarray:
    """Rodrigues: rotation vectors [..., 3] -> rotations [..., 3, 3]."""
    w = np.asarray(w, np.float64)
    theta = np.linalg.norm(w, axis=-1)[..., None, None]
    a, b, _ = _coeffs(theta)
    k = hat(w)
    return np.eye(3) + a * k + b * (k @ k)


def log_so3(R: np.ndarray) -> np.ndarray:
    """Rotations [..., 3, 3] -> rotation vectors [..., 3] (angle in [0, pi])."""
    R = np.asarray(R, np.float64)
    cos = np.clip((np.trace(R, axis1=-2, axis2=-1) - 1) / 2, -1.0, 1.0)
    theta = np.arccos(cos)
    v = np.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1)
    sin = np.sin(theta)
    near_pi = theta > np.pi - 1e-4
    scale = np.where(theta < 1e-6, 0.5, theta / (2 * np.where(np.abs(sin) < 1e-12, 1.0, sin)))
    out = v * scale[..., None]
    if np.any(near_pi):  # sin ~ 0: the axis from the symmetric part, n n^T = (S - cos I) / (1 - cos)
        Rp, cp = R[near_pi], cos[near_pi]
        S = (Rp + np.swapaxes(Rp, -1, -2)) / 2
        nn = (S - cp[:, None, None] * np.eye(3)) / (1 - cp)[:, None, None]
        i = np.argmax(np.diagonal(nn, axis1=-2, axis2=-1), -1)
        axis = nn[np.arange(len(Rp)), :, i]
        axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
        sign = np.where(np.sum(axis * v[near_pi], -1) < 0, -1.0, 1.0)[:, None]  # v = 2 sin(theta) n
        out[near_pi] = axis * sign * theta[near_pi][:, None]
    return out


def exp_se3(xi: np.ndarray) -> np.ndarray:
    """[..., 6] (omega, v) -> [..., 4, 4]: rotation exp(omega), translation V(omega) v."""
    xi = np.asarray(xi, np.float64)
    w, v = xi[..., :3], xi[..., 3:]
    theta = np.linalg.norm(w, axis=-1)[..., None, None]
    a, b, c = _coeffs(theta)
    k = hat(w)
    kk = k @ k
    R = np.eye(3) + a * k + b * kk
    V = np.eye(3) + b * k + c * kk
    T = np.zeros((*xi.shape[:-1], 4, 4))
    T[..., :3, :3] = R
    T[..., :3, 3] = (V @ v[..., None])[..., 0]
    T[..., 3, 3] = 1.0
    return T


def log_se3(T: np.ndarray) -> np.ndarray:
    """[..., 4, 4] -> [..., 6], the inverse of :func:`exp_se3`."""
    T = np.asarray(T, np.float64)
    w = log_so3(T[..., :3, :3])
    theta = np.linalg.norm(w, axis=-1)[..., None, None]
    a, b, _ = _coeffs(theta)
    k = hat(w)
    small = theta < 1e-4
    tt = np.where(small, 1.0, theta)
    d = np.where(small, 1 / 12 + theta**2 / 720, (1 - a / (2 * np.where(small, 1.0, b))) / tt**2)
    V_inv = np.eye(3) - 0.5 * k + d * (k @ k)
    v = (V_inv @ T[..., :3, 3][..., None])[..., 0]
    return np.concatenate([w, v], -1)


def inverse(T: np.ndarray) -> np.ndarray:
    """Inverse of rigid transforms [..., 4, 4]."""
    T = np.asarray(T, np.float64)
    out = np.zeros_like(T)
    Rt = np.swapaxes(T[..., :3, :3], -1, -2)
    out[..., :3, :3] = Rt
    out[..., :3, 3] = -(Rt @ T[..., :3, 3][..., None])[..., 0]
    out[..., 3, 3] = 1.0
    return out


def euler_xyz(angles: np.ndarray) -> np.ndarray:
    """Roll, pitch, yaw [..., 3] (radians, about x, y, z; applied x first) -> [..., 3, 3]."""
    a = np.asarray(angles, np.float64)
    return exp_so3(a[..., 2:3] * np.array([0, 0, 1.0])) @ exp_so3(a[..., 1:2] * np.array([0, 1.0, 0])) \
        @ exp_so3(a[..., 0:1] * np.array([1.0, 0, 0]))


def perturbation(rng: np.random.Generator, max_deg: float, max_m: float, n: int | None = None) -> np.ndarray:
    """Seeded random rigid perturbations: each Euler angle uniform in [-max_deg, max_deg] and each
    translation component uniform in [-max_m, max_m] (the protocol of the CalibNet / LCCNet line of
    papers' "10 deg / 25 cm" ranges). Returns [4, 4] (or [n, 4, 4])."""
    k = 1 if n is None else n
    D = np.tile(np.eye(4), (k, 1, 1))
    D[:, :3, :3] = euler_xyz(np.deg2rad(rng.uniform(-max_deg, max_deg, (k, 3))))
    D[:, :3, 3] = rng.uniform(-max_m, max_m, (k, 3))
    return D[0] if n is None else D


def rotation_error_deg(Ra: np.ndarray, Rb: np.ndarray) -> np.ndarray:
    """Geodesic angle between rotations (degrees), as atan2(|sin|, cos) of the relative rotation.

    arccos of the trace alone loses precision near 0 (its slope is infinite there) and reads a matrix's
    own rounding as an angle: KITTI's calib rotations are orthonormal to ~1e-8, so the same matrix
    compared with itself gave 0.012 deg. The sine comes from the skew part, zero for identical inputs."""
    rel = np.asarray(Ra, np.float64)[..., :3, :3] @ np.swapaxes(np.asarray(Rb, np.float64)[..., :3, :3], -1, -2)
    cos = (np.trace(rel, axis1=-2, axis2=-1) - 1) / 2
    skew = np.stack([rel[..., 2, 1] - rel[..., 1, 2], rel[..., 0, 2] - rel[..., 2, 0],
                     rel[..., 1, 0] - rel[..., 0, 1]], -1)
    return np.rad2deg(np.arctan2(np.linalg.norm(skew, axis=-1) / 2, cos))


def translation_error_m(Ta: np.ndarray, Tb: np.ndarray) -> np.ndarray:
    """The translation of the relative transform ``Ta @ inv(Tb)`` (metres): what is left to move once the
    rotation is right, as the perturbations are defined (``T = D @ T_true``) and as extrinsic-calibration
    papers evaluate it. (``|ta - tb|`` would count a rotation error times the lever arm.)"""
    Ta, Tb = np.asarray(Ta, np.float64), np.asarray(Tb, np.float64)
    Ra = Ta[..., :3, :3] @ np.swapaxes(Tb[..., :3, :3], -1, -2)
    return np.linalg.norm(Ta[..., :3, 3] - (Ra @ Tb[..., :3, 3][..., None])[..., 0], axis=-1)


def check_rigid(T: np.ndarray, where: str, tol: float = 1e-3) -> np.ndarray:
    """``T`` as a 4x4 rigid transform, or a one-line DataError naming ``where`` and what is wrong
    (not 4x4, non-finite, a rotation block that is not orthonormal with det +1, a bad last row)."""
    T = np.asarray(T, np.float64)
    if T.shape != (4, 4):
        raise DataError(f"{where}: a rigid transform is 4x4, got shape {list(T.shape)}")
    if not np.isfinite(T).all():
        raise DataError(f"{where}: the transform has non-finite values")
    if np.abs(T[3] - (0, 0, 0, 1)).max() > tol:
        row = [float(f"{v:.4g}") for v in T[3]]  # (np.round overflowed on huge values, with a RuntimeWarning)
        raise DataError(f"{where}: the last row of a rigid transform is 0 0 0 1, got {row}")
    R = T[:3, :3]
    big = float(np.abs(R).max())
    if big > 1 + tol:  # a rotation's entries are within +-1 (and a product of huge ones overflowed, with a warning)
        raise DataError(f"{where}: the rotation block is not orthonormal (an entry of {big:.4g}; a rotation's are "
                        "within +-1); the extrinsic must be rigid")
    err = float(np.abs(R @ R.T - np.eye(3)).max())
    det = float(np.linalg.det(R))
    if err > tol or det < 0:
        why = (f"not a rotation (det {det:.3g}; a rotation's is 1)" if abs(det) < 0.5
               else "a reflection (det -1)" if det < 0 else f"not orthonormal (|R R^T - I| = {err:.3g})")
        raise DataError(f"{where}: the rotation block is {why}; the extrinsic must be rigid")
    return T


def robust_mean(Ts: np.ndarray, ref: np.ndarray, k: float = 3.0, floor_deg: float = 0.1,
                floor_m: float = 0.005) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Combine per-frame estimates [N, 4, 4] of one transform: the component-wise median of their
    logarithms around ``ref`` (4x4), outliers rejected (rotation or translation residual beyond ``k``
    robust sigmas, never tighter than ``floor_deg`` / ``floor_m``), then the median of the inliers. The
    residuals are sizes of 3-D errors: for an isotropic Gaussian their median is 1.538 sigma.

    Returns (T, inlier mask [N], spread): the spread is the inliers' RMS rotation (deg) and translation
    (cm) residual around T, what a single frame's estimate scatters by.
    """
    Ts = np.asarray(Ts, np.float64)
    if Ts.ndim != 3 or len(Ts) == 0:
        raise ValueError("robust_mean needs at least one 4x4 estimate")
    xi = log_se3(Ts @ inverse(ref))

    def centre(mask: np.ndarray) -> np.ndarray:
        return exp_se3(np.median(xi[mask], 0)) @ ref

    inl = np.ones(len(Ts), bool)
    T = centre(inl)
    for _ in range(2):
        r = rotation_error_deg(Ts, T)
        t = translation_error_m(Ts, T)
        sr = max(float(np.median(r)) / 1.538, floor_deg)
        st = max(float(np.median(t)) / 1.538, floor_m)
        inl = (r <= k * sr) & (t <= k * st)
        if not inl.any():
            inl = np.ones(len(Ts), bool)
        T = centre(inl)
    r, t = rotation_error_deg(Ts[inl], T), translation_error_m(Ts[inl], T)
    spread = {"rot_rms_deg": float(np.sqrt(np.mean(r * r))), "trans_rms_cm": float(np.sqrt(np.mean(t * t)) * 100)}
    return T, inl, spread
