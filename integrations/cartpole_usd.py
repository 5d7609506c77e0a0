"""A cartpole articulation authored in code with pxr (USD), so the dagmix Isaac Lab task needs no asset download.

Same joint names and layout as Isaac Lab's ``Robots/Classic/Cartpole/cartpole.usd``: a rail fixed to the world, a
cart on the prismatic joint ``slider_to_cart`` (axis x, limits +-4 m) and a pole on the free revolute joint
``cart_to_pole`` (axis y). No collision shapes: the cartpole touches nothing.
"""

from __future__ import annotations

import hashlib
import os
import tempfile

CARTPOLE_USD_VERSION = 1
"""Bumped whenever the authored geometry or physics changes (it is part of the cached file's name)."""

_CART_SIZE = (0.5, 0.25, 0.2)
_CART_MASS = 1.0
_POLE_LENGTH = 1.0
_POLE_WIDTH = 0.04
_POLE_MASS = 0.25
_RAIL_LENGTH = 8.0


def _box_inertia(mass: float, size: tuple[float, float, float]) -> tuple[float, float, float]:
    x, y, z = size
    return (mass * (y * y + z * z) / 12.0, mass * (x * x + z * z) / 12.0, mass * (x * x + y * y) / 12.0)


def cartpole_usda() -> str:
    """Return the cartpole as USD ASCII text (deterministic: the same text for the same version)."""
    from pxr import Gf, Sdf, Usd, UsdGeom, UsdPhysics

    stage = Usd.Stage.CreateInMemory()
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    root = UsdGeom.Xform.Define(stage, "/cartpole").GetPrim()
    stage.SetDefaultPrim(root)
    UsdPhysics.ArticulationRootAPI.Apply(root)

    def body(name: str, mass: float, size: tuple[float, float, float], pos: tuple[float, float, float]) -> Sdf.Path:
        path = Sdf.Path(f"/cartpole/{name}")
        xform = UsdGeom.Xform.Define(stage, path)
        xform.AddTranslateOp().Set(Gf.Vec3d(*pos))
        prim = xform.GetPrim()
        UsdPhysics.RigidBodyAPI.Apply(prim)
        mass_api = UsdPhysics.MassAPI.Apply(prim)
        mass_api.CreateMassAttr(mass)
        mass_api.CreateCenterOfMassAttr(Gf.Vec3f(0.0, 0.0, 0.0))
        mass_api.CreateDiagonalInertiaAttr(Gf.Vec3f(*_box_inertia(mass, size)))
        visual = UsdGeom.Cube.Define(stage, path.AppendChild("visual"))
        visual.CreateSizeAttr(1.0)
        visual.AddScaleOp().Set(Gf.Vec3f(*size))
        return path

    rail = body("rail", 1.0, (_RAIL_LENGTH, 0.03, 0.03), (0.0, 0.0, 0.0))
    cart = body("cart", _CART_MASS, _CART_SIZE, (0.0, 0.0, 0.0))
    half = 0.5 * _POLE_LENGTH
    pole = body("pole", _POLE_MASS, (_POLE_WIDTH, _POLE_WIDTH, _POLE_LENGTH), (0.0, 0.0, half))

    fixed = UsdPhysics.FixedJoint.Define(stage, "/cartpole/rail_fixed")
    fixed.CreateBody1Rel().SetTargets([rail])

    slider = UsdPhysics.PrismaticJoint.Define(stage, "/cartpole/slider_to_cart")
    slider.CreateBody0Rel().SetTargets([rail])
    slider.CreateBody1Rel().SetTargets([cart])
    slider.CreateAxisAttr(UsdPhysics.Tokens.x)
    slider.CreateLowerLimitAttr(-0.5 * _RAIL_LENGTH)
    slider.CreateUpperLimitAttr(0.5 * _RAIL_LENGTH)
    UsdPhysics.DriveAPI.Apply(slider.GetPrim(), UsdPhysics.Tokens.linear).CreateDampingAttr(10.0)

    hinge = UsdPhysics.RevoluteJoint.Define(stage, "/cartpole/cart_to_pole")
    hinge.CreateBody0Rel().SetTargets([cart])
    hinge.CreateBody1Rel().SetTargets([pole])
    hinge.CreateAxisAttr(UsdPhysics.Tokens.y)
    hinge.CreateLocalPos1Attr(Gf.Vec3f(0.0, 0.0, -half))
    UsdPhysics.DriveAPI.Apply(hinge.GetPrim(), UsdPhysics.Tokens.angular).CreateDampingAttr(0.0)
    return stage.GetRootLayer().ExportToString()


def cartpole_usd_path(cache_dir: str | None = None) -> str:
    """Write the cartpole USD once and return its path (named by version and content hash, so never stale).

    Args:
        cache_dir: Where to write; default ``$DAGMIX_CACHE_DIR/assets``, else ``~/.cache/dagmix/assets``, else
            the system's temp directory when the home directory is not writable.
    """
    text = cartpole_usda()
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    name = f"dagmix_cartpole_v{CARTPOLE_USD_VERSION}_{digest}.usda"
    if cache_dir is None:
        base = os.environ.get("DAGMIX_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "dagmix")
        cache_dir = os.path.join(base, "assets")
    try:
        os.makedirs(cache_dir, exist_ok=True)
    except OSError:
        cache_dir = tempfile.gettempdir()
    path = os.path.join(cache_dir, name)
    if not os.path.isfile(path):
        fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".usda")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)  # atomic: concurrent runs never read a half-written file
    return path
