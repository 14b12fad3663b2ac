"""The built-in scene: an analytic, coloured, non-convex object and its rendered views.

The object is a ring (a torus in the ``xy`` plane) with a striped rod (a capsule) threaded
through its hole, the rod ending in a knob (a sphere, smoothly blended) so that the two pieces
are interlocked. It fits in the unit sphere, like the tutorial's cow. It is defined by two fields
of world points, a density ``sigma`` (from signed distances) and an RGB albedo that varies over
the surface (a colour wheel around the ring, stripes and a colour gradient along the rod), and
rendered with voxrender's ``ImplicitRenderer`` at a high sampling density, so the ground truth
is not itself a voxel grid.

Views follow the tutorial's cow: 40 training views at elevation 0 and azimuths
``linspace(-180, 180, 40) + 180``, distance 2.7, default ``FoVPerspectiveCameras``, black
background; and 25 held-out views (13 at elevation 0 between training azimuths, 6 at +25 and 6
at -25 degrees). Silhouettes are the rendered opacity itself (soft, in ``[0, 1]``, essentially
binary since the object is opaque), not a thresholded mask.

Dimension letters: ``B`` views, ``H, W`` image size, ``P`` points per ray.
"""

from __future__ import annotations

import math

import torch

from .backends import Backend, get_backend
from .data import INTRINSICS, ViewData, Views

__all__ = [
    "CAMERA_DIST",
    "HELDOUT_ANGLES",
    "TRAIN_ANGLES",
    "SceneFunction",
    "make_scene_data",
    "render_scene_views",
    "scene_color",
    "scene_density",
    "scene_sdf",
]

CAMERA_DIST = 2.7
SIGMA_MAX = 100.0  # density deep inside (per world unit): a 0.1-thick layer absorbs 1 - e^-10
SOFTNESS = 0.008  # width of the density's transition across the surface (world units)

RING_CENTER = (0.0, 0.1, 0.0)
RING_RADII = (0.5, 0.15)  # major, minor; axis along z
ROD_ENDS = ((-0.05, 0.0, -0.7), (0.05, 0.2, 0.55))
ROD_RADIUS = 0.11
KNOB_CENTER = (0.05, 0.2, 0.6)
KNOB_RADIUS = 0.2
BLEND = 0.08  # smooth-union width between rod and knob
BOUND_RADIUS = 1.0  # the object (and all its non-negligible density) lies inside this sphere


def _angles(n_train: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    azim = torch.linspace(-180.0, 180.0, n_train) + 180.0
    return torch.zeros(n_train), azim


TRAIN_ANGLES = _angles()  # (elev (40,), azim (40,)) in degrees
HELDOUT_ANGLES = (
    torch.cat((torch.zeros(13), torch.full((6,), 25.0), torch.full((6,), -25.0))),
    torch.cat(
        (
            4.6 + torch.arange(13) * (360.0 / 13),
            torch.arange(6) * 60.0,
            torch.arange(6) * 60.0 + 30.0,
        )
    ),
)


def _vec(values, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, dtype=like.dtype, device=like.device)


def _torus_sdf(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Signed distance to the ring and the angle around it. ``(..., 3) -> (...), (...)``."""
    q = p - _vec(RING_CENTER, p)
    major, minor = RING_RADII
    radial = torch.sqrt(q[..., 0] ** 2 + q[..., 1] ** 2) - major
    dist = torch.sqrt(radial**2 + q[..., 2] ** 2) - minor
    return dist, torch.atan2(q[..., 1], q[..., 0])


def _capsule_sdf(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Signed distance to the rod and the position along it in ``[0, 1]``. ``(..., 3) -> (...), (...)``."""
    a, b = _vec(ROD_ENDS[0], p), _vec(ROD_ENDS[1], p)
    ba = b - a
    t = (((p - a) * ba).sum(-1) / (ba * ba).sum()).clamp(0.0, 1.0)
    dist = torch.linalg.vector_norm(p - a - t[..., None] * ba, dim=-1) - ROD_RADIUS
    return dist, t


def _sphere_sdf(p: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(p - _vec(KNOB_CENTER, p), dim=-1) - KNOB_RADIUS


def _smooth_union(a: torch.Tensor, b: torch.Tensor, k: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Polynomial smooth minimum of two distances, and the weight of ``b`` in the blend."""
    h = (0.5 + 0.5 * (a - b) / k).clamp(0.0, 1.0)  # 1 where b is well inside, 0 where a is
    return torch.lerp(a, b, h) - k * h * (1.0 - h), h


def scene_sdf(points: torch.Tensor) -> torch.Tensor:
    """Signed distance to the object (negative inside). ``(..., 3) -> (...)``."""
    ring, _ = _torus_sdf(points)
    rod, _ = _capsule_sdf(points)
    key, _ = _smooth_union(rod, _sphere_sdf(points), BLEND)
    return torch.minimum(ring, key)


def scene_density(points: torch.Tensor) -> torch.Tensor:
    """Density ``sigma`` (absorption per world unit). ``(..., 3) -> (..., 1)``."""
    return SIGMA_MAX * torch.sigmoid(-scene_sdf(points) / SOFTNESS)[..., None]


def scene_color(points: torch.Tensor) -> torch.Tensor:
    """RGB albedo in ``[0, 1]`` of whichever piece is nearest. ``(..., 3) -> (..., 3)``."""
    ring, angle = _torus_sdf(points)
    rod, along = _capsule_sdf(points)
    key, knob_weight = _smooth_union(rod, _sphere_sdf(points), BLEND)
    phases = _vec([0.0, 2.0 * math.pi / 3.0, 4.0 * math.pi / 3.0], points)
    ring_rgb = 0.55 + 0.4 * torch.cos(angle[..., None] - phases)  # (..., 3) colour wheel
    warm, cool = _vec([0.95, 0.55, 0.15], points), _vec([0.1, 0.55, 0.7], points)
    stripes = 0.8 + 0.2 * torch.cos(2.0 * math.pi * 5.0 * along)
    rod_rgb = torch.lerp(warm, cool, along[..., None]) * stripes[..., None]  # (..., 3)
    key_rgb = torch.lerp(rod_rgb, _vec([0.95, 0.85, 0.3], points), knob_weight[..., None])
    rgb = torch.where((ring < key)[..., None], ring_rgb, key_rgb)
    shade = 0.8 + 0.2 * points[..., 1:2].clamp(-1.0, 1.0)  # brighter towards +y ("light above")
    return (rgb * shade).clamp(0.0, 1.0)


class SceneFunction(torch.nn.Module):
    """The scene as an ``ImplicitRenderer`` volumetric function.

    The emission-absorption raymarcher composites per-point opacities, so the density is turned
    into the opacity of each point's stretch of ray, ``1 - exp(-sigma * delta)``, with ``delta``
    the world distance to the next point: the render then converges as the sampling gets finer.

    Args:
        backend: the library whose ``ray_bundle_to_ray_points`` places the points.
    """

    def __init__(self, backend: Backend):
        super().__init__()
        self._ray_points = backend.ray_bundle_to_ray_points

    def forward(self, ray_bundle, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        """``ray_bundle`` with lengths ``(B, H, W, P)`` -> opacities ``(B, H, W, P, 1)``, colours ``(B, H, W, P, 3)``.

        The fields are evaluated only where they matter (a ground-truth generator, not a hot
        path): density inside the bounding sphere, colour where the opacity is not negligible.
        """
        points = self._ray_points(ray_bundle)  # (B, H, W, P, 3)
        lengths = ray_bundle.lengths
        step = lengths[..., 1:] - lengths[..., :-1]  # (B, H, W, P - 1)
        step = torch.cat((step, step[..., -1:]), dim=-1)  # (B, H, W, P)
        delta = step * torch.linalg.vector_norm(ray_bundle.directions, dim=-1, keepdim=True)
        flat = points.reshape(-1, 3)  # (M, 3)
        near = torch.nonzero((flat * flat).sum(-1) < BOUND_RADIUS**2).squeeze(1)  # (M_near,)
        alpha = 1.0 - torch.exp(-scene_density(flat[near])[:, 0] * delta.reshape(-1)[near])
        seen = alpha > 1e-7
        opacity = flat.new_zeros(flat.shape[0])
        opacity[near] = alpha
        colors = flat.new_zeros(flat.shape)
        colors[near[seen]] = scene_color(flat[near[seen]])
        return opacity.reshape(*points.shape[:-1], 1), colors.reshape(points.shape)


def render_scene_views(
    elev: torch.Tensor,
    azim: torch.Tensor,
    image_size: int,
    n_pts_per_ray: int,
    *,
    device: torch.device | str = "cpu",
    backend: Backend | None = None,
    max_points: int = 4_000_000,
) -> Views:
    """Render the scene from cameras at ``CAMERA_DIST`` looking at the origin.

    Args:
        elev, azim: ``(B,)`` angles in degrees, as ``look_at_view_transform`` takes them.
        image_size: side of the square images.
        n_pts_per_ray: points per ray, spread over the object's depth range only.
        device: where to render.
        backend: the renderer library (default voxrender).
        max_points: views are rendered in batches of at most this many ray points.

    Returns:
        :class:`~reference.data.Views` on the CPU; silhouettes are the rendered opacity.
    """
    backend = backend or get_backend("voxrender")
    R, T = backend.look_at_view_transform(dist=CAMERA_DIST, elev=elev, azim=azim)
    n = R.shape[0]
    intrinsics = {k: torch.full((n,), v) for k, v in INTRINSICS.items()}
    raysampler = backend.NDCMultinomialRaysampler(
        image_width=image_size,
        image_height=image_size,
        n_pts_per_ray=n_pts_per_ray,
        min_depth=CAMERA_DIST - BOUND_RADIUS,  # the object lies within the bounding sphere
        max_depth=CAMERA_DIST + BOUND_RADIUS,
    )
    renderer = backend.ImplicitRenderer(raysampler, backend.EmissionAbsorptionRaymarcher()).to(
        device
    )
    function = SceneFunction(backend)
    per_batch = max(1, max_points // (image_size * image_size * n_pts_per_ray))
    frames = []
    with torch.no_grad():
        for start in range(0, n, per_batch):
            sl = slice(start, start + per_batch)
            cameras = backend.FoVPerspectiveCameras(R=R[sl], T=T[sl], device=device)
            images, _ = renderer(cameras=cameras, volumetric_function=function)
            frames.append(images.clamp(0.0, 1.0).cpu())  # (b, H, W, 4)
    rendered = torch.cat(frames)
    return Views(
        images=rendered[..., :3].contiguous(),
        silhouettes=rendered[..., 3].contiguous(),
        R=R.cpu(),
        T=T.cpu(),
        **intrinsics,
    )


def make_scene_data(
    image_size: int = 128,
    n_pts_per_ray: int = 256,
    *,
    device: torch.device | str = "cpu",
    backend: Backend | None = None,
) -> ViewData:
    """The built-in scene's 40 training and 25 held-out views (see the module docstring)."""
    train = render_scene_views(
        *TRAIN_ANGLES, image_size, n_pts_per_ray, device=device, backend=backend
    )
    heldout = render_scene_views(
        *HELDOUT_ANGLES, image_size, n_pts_per_ray, device=device, backend=backend
    )
    source = f"built-in scene ({image_size}x{image_size}, {n_pts_per_ray} points per ray)"
    return ViewData(train=train, heldout=heldout, source=source)
