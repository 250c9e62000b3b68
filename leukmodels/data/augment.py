"""Online augmentation: a YAML list (or preset name) turned into an albumentations pipeline.

Items are names, ``{name: arg}`` or any albumentations transform ``{ClassName: {kwargs}}``:

============== ====================== ==================================================
name           argument               transform
============== ====================== ==================================================
hflip, vflip   probability (0.5)      ``HorizontalFlip`` / ``VerticalFlip``
rotate         degrees                rotation uniform in [-deg, deg]
shift          fraction               x and y shifts uniform in [-f, f] of the size
zoom           [lo, hi]               Keras ``zoom_range``: x, y coordinates scaled by
                                      z in [lo, hi] (z < 1 enlarges), i.e. scale 1/z
shear          degrees                shear uniform in [-deg, deg]
brightness     [lo, hi]               Keras ``brightness_range``: pixels times one factor
                                      in [lo, hi] (``MultiplicativeNoise``)
blur           max sigma (1.5)        ``GaussianBlur``, p 0.5
color_jitter   strength or {kwargs}   ``ColorJitter`` (default 0.2, hue 0.05), p 0.5
gaussian_noise sigma, 0-255 scale     ``GaussNoise`` with that standard deviation, p 0.5
============== ====================== ==================================================

rotate, shift, zoom and shear are merged into one ``Affine`` (one interpolation, as Keras's
``ImageDataGenerator`` does), always applied, at the place of the first of them, with
edge pixels replicated (Keras's ``fill_mode='nearest'``). Presets: ``none``, ``basic``
(hflip, vflip, rotate 20) and ``paper004`` (paper 004: rotate 45, hflip, brightness
[0.4, 0.8], shift 0.1, zoom [0.8, 1], shear 3). Augmentation runs on training images
only, on uint8 RGB, after the split and before colour conversion and normalisation.

Masks: :func:`apply_augment` runs a pipeline on an image and, when given, its nucleus mask
together: albumentations draws one set of random parameters per call and applies every
geometric transform (flips, the ``Affine``, crops, ...) to both, the mask with
nearest-neighbour interpolation and the same border rule (``Affine``: edge replicated);
pixel-level transforms (brightness, blur, colour, noise) leave the mask as it is. Without a
mask the call is the image-only one.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from leukmodels.errors import DataError, UserError

if TYPE_CHECKING:
    import albumentations as A

PRESETS: dict[str, list[Any]] = {
    "none": [],
    "basic": ["hflip", "vflip", {"rotate": 20}],
    "paper004": [
        {"rotate": 45},
        "hflip",
        {"brightness": [0.4, 0.8]},
        {"shift": 0.1},
        {"zoom": [0.8, 1.0]},
        {"shear": 3},
    ],
}
GEOMETRIC = ("rotate", "shift", "zoom", "shear")
NAMES = ("hflip", "vflip", *GEOMETRIC, "brightness", "blur", "color_jitter", "gaussian_noise")

AugmentSpec = list[Any] | str | None


def _albumentations() -> Any:
    """albumentations, imported on first use (it imports torch: validating a space's
    augmentation names must not)."""
    import albumentations

    return albumentations


def _valid() -> str:
    return (
        f"valid names: {', '.join(NAMES)}; presets: {', '.join(PRESETS)}; or an albumentations "
        "transform by class name, e.g. {CLAHE: {clip_limit: 2}}"
    )


def _number(name: str, arg: Any, low: float = 0.0, high: float | None = None) -> float:
    if isinstance(arg, bool) or not isinstance(arg, int | float):
        raise UserError(f"augment {name}: expected a number, got {arg!r}")
    if arg < low or (high is not None and arg > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise UserError(f"augment {name}: {arg!r} must be {bound}")
    return float(arg)


def _pair(name: str, arg: Any) -> tuple[float, float]:
    if not isinstance(arg, list | tuple) or len(arg) != 2:
        raise UserError(f"augment {name}: expected [lo, hi], got {arg!r}")
    lo, hi = (_number(name, v) for v in arg)
    if not 0 < lo <= hi:
        raise UserError(f"augment {name}: need 0 < lo <= hi, got {list(arg)}")
    return lo, hi


def _items(spec: AugmentSpec) -> list[tuple[str, Any]]:
    """(name, argument) pairs of a spec, presets expanded; raises UserError on bad shapes."""
    if spec is None:
        return []
    if isinstance(spec, str):
        preset = PRESETS.get(spec.strip().lower())
        if preset is None:
            raise UserError(f"unknown augmentation preset {spec!r}; {_valid()}")
        spec = preset
    if not isinstance(spec, list | tuple):
        raise UserError(
            f"augment must be a list or a preset name, got {type(spec).__name__}; {_valid()}"
        )
    items: list[tuple[str, Any]] = []
    for item in spec:
        if isinstance(item, str):
            items.append((item.strip(), None))
        elif isinstance(item, dict) and len(item) == 1:
            ((name, arg),) = item.items()
            items.append((str(name).strip(), arg))
        else:
            raise UserError(
                f"augment item {item!r} must be a name or a one-key mapping {{name: arg}}; {_valid()}"
            )
    return items


def _albumentations_class(name: str) -> type[A.BasicTransform] | None:
    A = _albumentations()  # noqa: N806
    cls = getattr(A, name, None)
    if inspect.isclass(cls) and issubclass(cls, A.BasicTransform):
        return cls
    return None


def _construct(
    name: str, cls: Callable[..., A.BasicTransform], kwargs: dict[str, Any]
) -> A.BasicTransform:
    params = inspect.signature(cls).parameters
    unknown = sorted(set(kwargs) - set(params))
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        accepted = ", ".join(p for p in params if p not in ("self", "args", "kwargs"))
        raise UserError(
            f"augment {name}: unknown argument(s) {unknown}; {name} accepts: {accepted}"
        )
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        detail = " ".join(str(exc).split())
        raise UserError(f"augment {name}: invalid arguments {kwargs}: {detail}") from None


def _named(name: str, arg: Any) -> tuple[str, dict[str, Any]]:
    """(albumentations class name, kwargs) for one of our short names; checks the argument."""
    if name in ("hflip", "vflip"):
        p = 0.5 if arg is None else _number(name, arg, 0.0, 1.0)
        return ("HorizontalFlip" if name == "hflip" else "VerticalFlip"), {"p": p}
    if name == "brightness":
        multiplier = _pair(name, arg)
        return "MultiplicativeNoise", {
            "multiplier": multiplier, "per_channel": False, "elementwise": False, "p": 1.0
        }  # fmt: skip
    if name == "blur":
        sigma = 1.5 if arg is None else _number(name, arg, 0.1)
        return "GaussianBlur", {"sigma_limit": (0.1, sigma), "p": 0.5}
    if name == "color_jitter":
        if isinstance(arg, dict):
            return "ColorJitter", {**arg, "p": arg.get("p", 0.5)}
        s = 0.2 if arg is None else _number(name, arg, 0.0, 1.0)
        return "ColorJitter", {
            "brightness": s,
            "contrast": s,
            "saturation": s,
            "hue": s / 4,
            "p": 0.5,
        }
    if name == "gaussian_noise":
        if arg is None:
            raise UserError(
                "augment gaussian_noise: give the sigma on the 0-255 scale, e.g. {gaussian_noise: 5}"
            )
        sigma = _number(name, arg, 0.0, 255.0) / 255.0
        return "GaussNoise", {"std_range": (sigma, sigma), "p": 0.5}
    raise AssertionError(name)  # pragma: no cover


def _affine(args: dict[str, Any], build: bool = True) -> A.Affine | None:
    import cv2

    kwargs: dict[str, Any] = {"border_mode": cv2.BORDER_REPLICATE, "p": 1.0}
    if "rotate" in args:
        deg = _number("rotate", args["rotate"])
        kwargs["rotate"] = (-deg, deg)
    if "shift" in args:
        f = _number("shift", args["shift"], 0.0, 0.99)
        kwargs["translate_percent"] = {"x": (-f, f), "y": (-f, f)}
    if "zoom" in args:
        lo, hi = _pair("zoom", args["zoom"])
        kwargs["scale"] = {"x": (1 / hi, 1 / lo), "y": (1 / hi, 1 / lo)}
    if "shear" in args:
        deg = _number("shear", args["shear"])
        kwargs["shear"] = (-deg, deg)
    return _albumentations().Affine(**kwargs) if build else None


def _transforms(spec: AugmentSpec, build: bool = True) -> list[A.BasicTransform]:
    """The transforms of ``spec``; with ``build=False`` only check it (albumentations is
    imported only when a transform is named by its albumentations class or must be built)."""
    items: list[Any] = []  # (class name, kwargs, label) or the merged geometric dict
    geometric: dict[str, Any] | None = None
    for name, arg in _items(spec):
        key = name.lower()
        if key in GEOMETRIC:
            if arg is None:
                raise UserError(f"augment {key}: needs an argument, e.g. {{{key}: ...}}")
            if geometric is None:
                geometric = {}
                items.append(geometric)
            if key in geometric:
                raise UserError(f"augment {key} is given twice")
            geometric[key] = arg
        elif key in NAMES:
            cls_name, kwargs = _named(key, arg)
            label = f"{key} ({cls_name})" if isinstance(arg, dict) else None
            items.append((cls_name, kwargs, label))
        elif (cls := _albumentations_class(name)) is not None:
            if arg is not None and not isinstance(arg, dict):
                raise UserError(
                    f"augment {name}: arguments must be a mapping {{kwarg: value}}, got {arg!r}"
                )
            items.append((cls.__name__, arg or {}, name))
        else:
            raise UserError(f"unknown augmentation {name!r}; {_valid()}")
    out = []
    for item in items:
        if isinstance(item, dict):
            out.append(_affine(item, build))
            continue
        cls_name, kwargs, label = item
        if label is None and not build:
            continue  # our own names with checked arguments: nothing more to validate
        A = _albumentations()  # noqa: N806
        out.append(_construct(label or cls_name, getattr(A, cls_name), kwargs))
    return out


def validate_augment(spec: AugmentSpec) -> None:
    """Raise UserError when `spec` is not a valid augmentation list or preset."""
    _transforms(spec, build=False)


def apply_augment(
    augment: A.Compose, image: np.ndarray, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """``(image, mask)`` after one draw of ``augment``, the same geometry applied to both.

    ``image``: uint8 (H, W, 3) (copied first when read-only); ``mask``: (H, W), nonzero =
    foreground, or None. The mask comes back as uint8 0/1 of the output image's H x W.
    """
    if not image.flags.writeable:  # a view of the read-only cache
        image = image.copy()
    if mask is None:
        return augment(image=image)["image"], None
    mask = np.asarray(mask)
    if mask.shape != image.shape[:2]:
        raise DataError(f"mask of shape {mask.shape} does not fit an image of {image.shape[:2]}")
    out = augment(image=image, mask=np.ascontiguousarray((mask > 0).astype(np.uint8)))
    return out["image"], np.asarray(out["mask"], dtype=np.uint8)


def build_augment(spec: AugmentSpec, seed: int | None = None) -> A.Compose | None:
    """The albumentations pipeline for `spec`, or None when it is empty ("none", [], None)."""
    transforms = _transforms(spec)
    if not transforms:
        return None
    return _albumentations().Compose(transforms, seed=seed)
