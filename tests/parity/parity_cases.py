"""Generated parity cases: hypothesis strategies, the calls to run on them, and the comparison.

A *case* is plain data (numpy float64 arrays and Python settings) drawn by a strategy below.
``run_*(impl, case)`` builds one implementation's objects from it (``impl.ns`` holds the
PyTorch3D-named API: voxrender's or PyTorch3D's own, in ``impl.dtype`` on ``impl.device``),
makes the calls, pushes one seeded random cotangent through every differentiable output and
returns ``(outputs, grads)``. :func:`assert_parity` compares two such results with the
fixtures' float32 tolerances. The same code serves the live PyTorch3D comparison and, in CI,
voxrender float32 against voxrender float64, so it never goes unexercised.

Inputs are generated well-conditioned on purpose (cameras 4-6 units from points near the origin,
depths away from the near plane, angles away from pi): a mismatch then means a different
convention or a bug, not float32 round-off amplified by an ill-posed case.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from helpers import TOLERANCES
from hypothesis import strategies as st

CAMERA_KINDS = ("fov_perspective", "fov_orthographic", "perspective", "orthographic")
SAMPLE_MODES = ("bilinear", "nearest")
PADDING_MODES = ("zeros", "border", "reflection")

API_NAMES = (
    "AbsorptionOnlyRaymarcher",
    "EmissionAbsorptionRaymarcher",
    "FoVOrthographicCameras",
    "FoVPerspectiveCameras",
    "MonteCarloRaysampler",
    "MultinomialRaysampler",
    "NDCMultinomialRaysampler",
    "OrthographicCameras",
    "PerspectiveCameras",
    "RayBundle",
    "VolumeRenderer",
    "VolumeSampler",
    "Volumes",
    "so3_exp_map",
    "so3_log_map",
)


@dataclass(frozen=True)
class Impl:
    """One implementation of the API, at one dtype on one device."""

    name: str
    ns: Any
    dtype: torch.dtype
    device: str

    def tensor(self, array, requires_grad: bool = False) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(array), dtype=self.dtype, device=self.device)
        return t.requires_grad_(requires_grad)


def voxrender_impl(dtype: torch.dtype = torch.float32, device: str = "cpu") -> Impl:
    import voxrender.cameras

    ns = SimpleNamespace(
        **{n: getattr(voxrender, n, None) or getattr(voxrender.cameras, n) for n in API_NAMES}
    )
    return Impl(f"voxrender-{str(dtype)[6:]}", ns, dtype, device)


def import_pytorch3d() -> tuple[Any | None, str]:
    """PyTorch3D's API namespace (via :mod:`reference.oracle`), or None and why not."""
    from reference.oracle import import_pytorch3d as oracle_import

    module, reason = oracle_import()
    if module is None:
        return None, reason
    from pytorch3d import renderer, structures, transforms

    sources = (renderer, structures, transforms)
    ns = SimpleNamespace(
        **{n: next(getattr(m, n) for m in sources if hasattr(m, n)) for n in API_NAMES}
    )
    return ns, ""


# ---------------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------------


def _rotations(log_rot: np.ndarray) -> np.ndarray:
    """Rodrigues' formula, ``(N, 3)`` axis-angle -> ``(N, 3, 3)``, in numpy float64."""
    angle = np.linalg.norm(log_rot, axis=1)[:, None, None]  # (N, 1, 1)
    k = log_rot / np.maximum(angle[:, :, 0], 1e-12)  # (N, 3)
    hat = np.zeros((len(k), 3, 3))
    hat[:, 0, 1], hat[:, 0, 2], hat[:, 1, 2] = -k[:, 2], k[:, 1], -k[:, 0]
    hat = hat - hat.transpose(0, 2, 1)
    return np.eye(3) + np.sin(angle) * hat + (1 - np.cos(angle)) * hat @ hat


@st.composite
def camera_cases(draw, kinds=CAMERA_KINDS, max_cameras: int = 3, image_max: int = 24):
    """Cameras of one kind (in NDC or screen space), world points and NDC xy-depths."""
    kind = draw(st.sampled_from(kinds))
    n = draw(st.integers(1, max_cameras))
    in_ndc = draw(st.booleans()) if kind in ("perspective", "orthographic") else True
    height, width = draw(st.integers(3, image_max)), draw(st.integers(3, image_max))
    focal_pair = draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    u = lambda lo, hi, *shape: rng.uniform(lo, hi, shape)  # noqa: E731
    T = np.concatenate((u(-0.4, 0.4, n, 2), u(4.0, 6.0, n, 1)), axis=1)
    arrays = {"R": _rotations(u(-0.6, 0.6, n, 3)), "T": T}
    half_short = min(height, width) / 2
    if kind == "fov_perspective":
        arrays |= {
            "znear": u(0.3, 1.0, n),
            "zfar": u(12.0, 30.0, n),
            "fov": u(35.0, 75.0, n),
            "aspect_ratio": u(0.8, 1.3, n),
        }
    elif kind == "fov_orthographic":
        arrays |= {
            "znear": u(0.1, 0.5, n),
            "zfar": u(9.0, 12.0, n),
            "max_x": u(1.0, 2.0, n),
            "min_x": u(-2.0, -1.0, n),
            "max_y": u(1.0, 2.0, n),
            "min_y": u(-2.0, -1.0, n),
            "scale_xyz": u(0.8, 1.2, n, 3),
        }
    else:
        focal = u(1.2, 2.5, n, 2 if focal_pair else 1)
        principal = u(-0.2, 0.2, n, 2)
        if kind == "orthographic":
            focal = focal / 3
        if not in_ndc:  # pixels: the same cameras, in screen units
            focal = focal * half_short
            principal = np.array([width / 2, height / 2]) - principal * half_short
        arrays |= {"focal_length": focal, "principal_point": principal}
    arrays["points"] = u(-1.0, 1.0, n, 6, 3)
    arrays["xy_depth"] = np.concatenate((u(-0.8, 0.8, n, 6, 2), u(3.0, 7.0, n, 6, 1)), axis=2)
    return {
        "kind": kind,
        "n": n,
        "in_ndc": in_ndc,
        "image_size": (height, width),
        "arrays": arrays,
        "cot_seed": int(rng.integers(2**31)),
    }


def make_cameras(impl: Impl, case: dict, leaves: dict[str, torch.Tensor]):
    """The case's cameras in ``impl``, built from the tensors in ``leaves``."""
    kind, ns, device = case["kind"], impl.ns, impl.device
    fields = {k: v for k, v in leaves.items() if k not in ("points", "xy_depth")}
    if kind == "fov_perspective":
        return ns.FoVPerspectiveCameras(**fields, device=device)
    if kind == "fov_orthographic":
        return ns.FoVOrthographicCameras(**fields, device=device)
    cls = ns.PerspectiveCameras if kind == "perspective" else ns.OrthographicCameras
    extra = {} if case["in_ndc"] else {"in_ndc": False, "image_size": (tuple(case["image_size"]),)}
    return cls(**fields, device=device, **extra)


def _leaves(impl: Impl, arrays: dict[str, np.ndarray], skip=()) -> dict[str, torch.Tensor]:
    return {k: impl.tensor(v, requires_grad=k not in skip) for k, v in arrays.items()}


# Rays do not depend on the clipping planes (they cancel between projection and unprojection):
# their gradients are zero up to round-off, which is noise to compare, so they are not leaves.
_CANCELLING_IN_RAYS = ("znear", "zfar")


def _backward(outputs: dict, leaves: dict, cot_seed: int) -> dict[str, torch.Tensor]:
    """Gradients of ``sum_k sum(out_k * cot_k)`` w.r.t. ``leaves``.

    Cotangents: seeded normals drawn in float64 on the CPU in sorted output order, so every implementation gets the same).
    """
    generator = torch.Generator().manual_seed(cot_seed)
    loss = None
    for name in sorted(outputs):
        out = outputs[name]
        if not out.is_floating_point():
            continue
        cot = torch.randn(out.shape, generator=generator, dtype=torch.float64)
        if out.requires_grad:
            term = (out * cot.to(out.device, out.dtype)).sum()
            loss = term if loss is None else loss + term
    wrt = {k: v for k, v in leaves.items() if v.requires_grad}
    if loss is None or not wrt:
        return {}
    grads = torch.autograd.grad(loss, list(wrt.values()), allow_unused=True)
    return {
        k: torch.zeros_like(v) if g is None else g
        for (k, v), g in zip(wrt.items(), grads, strict=True)
    }


def run_cameras(impl: Impl, case: dict):
    """Every projection and unprojection of :mod:`voxrender.cameras`, with gradients."""
    leaves = _leaves(impl, case["arrays"])
    cams = make_cameras(impl, case, leaves)
    points, n = leaves["points"], case["n"]
    size = (tuple(case["image_size"]),)
    native = cams.transform_points(points)  # NDC, or screen units for screen cameras
    view_depth = cams.get_world_to_view_transform().transform_points(points)[..., 2:]
    pick = [n - 1, 0]
    outputs = {
        "projection_matrix": cams.get_projection_transform().get_matrix(),
        "world_to_view_matrix": cams.get_world_to_view_transform().get_matrix(),
        "full_projection_matrix": cams.get_full_projection_transform().get_matrix(),
        "transform_points": native,
        "transform_points_ndc": cams.transform_points_ndc(points),
        "transform_points_screen": cams.transform_points_screen(points, image_size=size),
        "unproject_from_ndc": cams.unproject_points(
            leaves["xy_depth"], world_coordinates=True, from_ndc=True
        ),
        "unproject_view": cams.unproject_points(
            torch.cat((native[..., :2], view_depth), dim=-1), world_coordinates=False
        ),
        "camera_center": cams.get_camera_center(),
        "getitem_transform_points_ndc": cams[pick].transform_points_ndc(points[pick]),
    }
    return outputs, _backward(outputs, leaves, case["cot_seed"])


@st.composite
def raysampler_cases(draw, random: bool | None = None):
    """A camera case plus a raysampler (NDC grid, custom grid or Monte-Carlo) and its options."""
    case = draw(camera_cases(max_cameras=2, image_max=9))
    height, width = case["image_size"]
    sampler = draw(st.sampled_from(("ndc", "multinomial", "montecarlo")))
    if random is False:
        sampler = draw(st.sampled_from(("ndc", "multinomial")))
    init: dict[str, Any] = {
        "n_pts_per_ray": draw(st.integers(2, 5)),
        "min_depth": draw(st.floats(2.0, 3.0)),
        "max_depth": draw(st.floats(6.0, 8.0)),
        "unit_directions": draw(st.booleans()),
    }
    if random is not False:
        init["stratified_sampling"] = draw(st.booleans()) if random is None else True
    if sampler != "ndc":
        x0, y0 = draw(st.floats(-1.0, -0.2)), draw(st.floats(-1.0, -0.2))
        init |= {"min_x": x0, "max_x": x0 + draw(st.floats(0.4, 1.6))}
        init |= {"min_y": y0, "max_y": y0 + draw(st.floats(0.4, 1.6))}
    if sampler == "montecarlo":
        init["n_rays_per_image"] = draw(st.integers(1, 12))
    else:
        init |= {"image_width": width, "image_height": height}
        if random is not False and draw(st.booleans()):
            init["n_rays_per_image"] = draw(st.integers(1, height * width))
    case["sampler"] = {
        "ndc": "NDCMultinomialRaysampler",
        "multinomial": "MultinomialRaysampler",
        "montecarlo": "MonteCarloRaysampler",
    }[sampler]
    case["init"] = init
    case["torch_seed"] = draw(st.integers(0, 2**31 - 1))
    return case


def run_raysampler(impl: Impl, case: dict):
    """A raysampler's bundle for the case's cameras (seeded), with gradients w.r.t. the cameras."""
    arrays = {k: v for k, v in case["arrays"].items() if k not in ("points", "xy_depth")}
    leaves = _leaves(impl, arrays, skip=_CANCELLING_IN_RAYS)
    cams = make_cameras(impl, case, leaves)
    sampler = getattr(impl.ns, case["sampler"])(**case["init"])
    torch.manual_seed(case["torch_seed"])
    bundle = sampler(cams)
    outputs = {k: getattr(bundle, k) for k in ("origins", "directions", "lengths", "xys")}
    return outputs, _backward(outputs, leaves, case["cot_seed"])


@st.composite
def volume_cases(draw):
    """A padded batch of volumes and a ray bundle reaching in and out of them."""
    batch = draw(st.integers(1, 2))
    c_density, c_feature = draw(st.integers(1, 2)), draw(st.integers(0, 3))
    grid = tuple(draw(st.integers(2, 6)) for _ in range(3))
    rays, points = draw(st.integers(1, 6)), draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scalar_voxel = draw(st.booleans())
    voxel_size = float(rng.uniform(0.2, 0.5)) if scalar_voxel else rng.uniform(0.2, 0.5, 3)
    extent = np.asarray(grid[::-1]) * voxel_size  # (x, y, z) sizes
    translation = rng.uniform(-0.3, 0.3, 3)
    origins = rng.uniform(-1, 1, (batch, rays, 3)) * extent  # around the volumes
    directions = rng.normal(size=(batch, rays, 3))
    directions *= (
        rng.uniform(0.2, 0.6) * extent.max() / np.linalg.norm(directions, axis=-1, keepdims=True)
    )
    arrays = {
        "densities": rng.uniform(0, 1, (batch, c_density, *grid)),
        "origins": origins,
        "directions": directions,
        "lengths": np.sort(rng.uniform(0, 2.0, (batch, rays, points)), axis=-1),
    }
    if c_feature:
        arrays["features"] = rng.uniform(0, 1, (batch, c_feature, *grid))
    return {
        "arrays": arrays,
        "voxel_size": voxel_size,
        "volume_translation": translation,
        "align_corners": draw(st.booleans()),
        "sample_mode": draw(st.sampled_from(SAMPLE_MODES)),
        "padding_mode": draw(st.sampled_from(PADDING_MODES)),
        "cot_seed": int(rng.integers(2**31)),
    }


def run_volume_sampler(impl: Impl, case: dict):
    """``VolumeSampler(Volumes(...))(RayBundle(...))`` with gradients w.r.t. every input."""
    leaves = _leaves(impl, case["arrays"])
    voxel_size = case["voxel_size"]
    volumes = impl.ns.Volumes(
        densities=leaves["densities"],
        features=leaves.get("features"),
        voxel_size=voxel_size if isinstance(voxel_size, float) else impl.tensor(voxel_size),
        volume_translation=impl.tensor(case["volume_translation"]),
        align_corners=case["align_corners"],
    )
    bundle = impl.ns.RayBundle(leaves["origins"], leaves["directions"], leaves["lengths"], None)
    sampler = impl.ns.VolumeSampler(
        volumes, sample_mode=case["sample_mode"], padding_mode=case["padding_mode"]
    )
    rays_densities, rays_features = sampler(bundle)
    outputs = {"rays_densities": rays_densities}
    if "features" in leaves:
        outputs["rays_features"] = rays_features
    else:
        outputs["rays_features_shape"] = torch.tensor(list(rays_features.shape))
    return outputs, _backward(outputs, leaves, case["cot_seed"])


@st.composite
def raymarcher_cases(draw):
    """Densities in ``[0, 1]`` (with exact zeros and ones) and features along rays."""
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 5)), draw(st.integers(2, 8)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    densities = rng.uniform(0, 1, (*shape, 1))
    densities[rng.uniform(size=densities.shape) < 0.1] = 0.0
    densities[rng.uniform(size=densities.shape) < 0.1] = 1.0
    return {
        "marcher": draw(
            st.sampled_from(("EmissionAbsorptionRaymarcher", "AbsorptionOnlyRaymarcher"))
        ),
        "surface_thickness": draw(st.integers(1, 3)),
        "eps": draw(st.sampled_from((1e-10, 1e-4, 0.0))),
        "arrays": {
            "rays_densities": densities,
            "rays_features": rng.uniform(0, 1, (*shape, draw(st.integers(1, 4)))),
        },
        "cot_seed": int(rng.integers(2**31)),
    }


def run_raymarcher(impl: Impl, case: dict):
    leaves = _leaves(impl, case["arrays"])
    if case["marcher"] == "EmissionAbsorptionRaymarcher":
        marcher = impl.ns.EmissionAbsorptionRaymarcher(surface_thickness=case["surface_thickness"])
        out = marcher(leaves["rays_densities"], leaves["rays_features"], eps=case["eps"])
    else:
        out = impl.ns.AbsorptionOnlyRaymarcher()(leaves["rays_densities"])
    outputs = {"out": out}
    return outputs, _backward(outputs, leaves, case["cot_seed"])


@st.composite
def render_cases(draw):
    """The tutorial's model, tiny: any camera kind, a small RGB + density grid."""
    case = draw(camera_cases(max_cameras=2, image_max=8))
    size = draw(st.integers(3, 7))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    case["arrays"].pop("points")
    case["arrays"].pop("xy_depth")
    case["arrays"]["log_densities"] = rng.normal(-1.0, 1.5, (1, size, size, size))
    case["arrays"]["log_colors"] = rng.normal(0.0, 1.0, (3, size, size, size))
    case["voxel_size"] = 2.4 / size
    case["n_pts_per_ray"] = draw(st.integers(4, 12))
    case["sample_mode"] = draw(st.sampled_from(SAMPLE_MODES))
    return case


def run_render(impl: Impl, case: dict):
    leaves = _leaves(impl, case["arrays"], skip=_CANCELLING_IN_RAYS)
    cam_leaves = {k: v for k, v in leaves.items() if not k.startswith("log_")}
    cams = make_cameras(impl, case, cam_leaves)
    height, width = case["image_size"]
    renderer = impl.ns.VolumeRenderer(
        raysampler=impl.ns.NDCMultinomialRaysampler(
            image_width=width,
            image_height=height,
            n_pts_per_ray=case["n_pts_per_ray"],
            min_depth=3.0,
            max_depth=7.0,
        ),
        raymarcher=impl.ns.EmissionAbsorptionRaymarcher(),
        sample_mode=case["sample_mode"],
    )
    n = case["n"]
    log_densities, log_colors = leaves["log_densities"], leaves["log_colors"]
    volumes = impl.ns.Volumes(
        densities=torch.sigmoid(log_densities)[None].expand(n, *log_densities.shape),
        features=torch.sigmoid(log_colors)[None].expand(n, *log_colors.shape),
        voxel_size=case["voxel_size"],
    )
    outputs = {"images": renderer(cameras=cams, volumes=volumes)[0]}
    return outputs, _backward(outputs, leaves, case["cot_seed"])


@st.composite
def so3_cases(draw):
    n = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))

    def axis_angles():
        axis = rng.normal(size=(n, 3))
        angle = rng.uniform(0.2, 2.5, (n, 1))
        return axis / np.linalg.norm(axis, axis=1, keepdims=True) * angle

    return {
        "arrays": {"log_rot": axis_angles(), "R": _rotations(axis_angles())},
        "cot_seed": int(rng.integers(2**31)),
    }


def run_so3(impl: Impl, case: dict):
    leaves = _leaves(impl, case["arrays"])
    outputs = {
        "exp_map": impl.ns.so3_exp_map(leaves["log_rot"]),
        "log_map": impl.ns.so3_log_map(leaves["R"]),
    }
    return outputs, _backward(outputs, leaves, case["cot_seed"])


# ---------------------------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------------------------


# Gradients for the clipping planes sum many terms that largely cancel (NDC depth varies little
# with znear / zfar for points far from both): float32 round-off then reaches ~1e-3 of the
# result (seen: 1.3e-3 for a 6-point fov_perspective case), so they get 10x the float32 rule.
_ILL_CONDITIONED_GRADS = ("znear", "zfar")


def assert_parity(ours: tuple[dict, dict], reference: tuple[dict, dict], what: str = "") -> None:
    """Outputs and gradients of two implementations agree within the fixtures' float32 rule.

    ``|got - want| <= atol * max(1, max|want|) + rtol * |want|``: the fixtures' atol is scaled by
    the magnitude of each array, since generated values range over orders of magnitude (pixels,
    matrices, gradients summed over many points). Integer outputs must be equal.
    """
    for kind, got_all, want_all in (
        ("out", ours[0], reference[0]),
        ("grad", ours[1], reference[1]),
    ):
        assert sorted(got_all) == sorted(want_all), f"{what} {kind} keys differ"
        for key, want in want_all.items():
            got = got_all[key].detach().cpu()
            want = want.detach().cpu()
            assert got.shape == want.shape, (
                f"{what} {kind}/{key}: shape {got.shape} vs {want.shape}"
            )
            if not want.is_floating_point():
                assert torch.equal(got, want.to(got.dtype)), f"{what} {kind}/{key} differs"
                continue
            got, want = got.double(), want.double()
            atol, rtol = TOLERANCES[torch.float32][kind]
            if kind == "grad" and key in _ILL_CONDITIONED_GRADS:
                atol, rtol = 10 * atol, 10 * rtol
            scale = max(1.0, float(want.abs().max())) if want.numel() else 1.0
            torch.testing.assert_close(
                got,
                want,
                atol=atol * scale,
                rtol=rtol,
                msg=lambda m, k=key, c=kind: f"{what} {c}/{k}\n{m}",
            )
