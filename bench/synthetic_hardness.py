"""How hard is the synthetic data set, and how fast is it made?

Measures, on ``--threads`` CPU threads (2) per job:

- generation speed (images/s) at 64 px and 224 px;
- baselines that must fail, each scikit-learn LogisticRegression (standardised
  features) on n=2000 images (``--baseline-n``) of 40 patients (``--baseline-patients``)
  at 64 px, patient-grouped 80/20 splits (several split seeds): 8x8 thumbnails (all RGB
  values), a 16-bin grey-level histogram, LBP (scikit-image ``local_binary_pattern``,
  uniform, (P, R) = (8, 1), (16, 2), (24, 3), histograms concatenated) and GLCM
  (``graycomatrix`` on 32 grey levels, distances 1, 2, 4, four angles; contrast,
  dissimilarity, homogeneity, energy, correlation, ASM);
- a CNN that must succeed: timm resnet18 (pretrained=False) trained from scratch on
  ``--n-train`` images (320) at 64 px for ``--epochs`` (6; Adam ``--lr`` 1e-3, AdamW
  when ``--weight-decay`` > 0, ``--batch`` 32, ``--label-smoothing`` 0, [0,1] then
  ImageNet normalisation; ``--augment`` flip, d4 = flips and transposes, or rotate = a
  flip and a rotation by any angle with a zoom from 1 +- ``--scale``; ``--schedule``
  constant or cosine per step), tested on 400 images made with another seed (other
  patients); one run per seed (``--cnn-seeds`` from ``--seed0``), ``--jobs`` at a time;
  ``--fresh`` draws new training images (other seed and patients) every epoch;
  ``--eval-every`` N prints the test accuracy every N epochs (monitoring; the reported
  figure is always the one after the last epoch).

Each for every ``--difficulty`` of the generator (standard, hard).

Usage: python bench/synthetic_hardness.py [--classes 2 4] [--difficulty standard hard]
       [--cnn-seeds 3] [--epochs 6] [--n-train 320] [--augment d4|rotate] [--scale 0.1]
       [--schedule cosine] [--batch 32] [--weight-decay 0.05] [--label-smoothing 0.1]
       [--threads 1] [--jobs 2] [--eval-every 5] [--no-cnn] [--no-baselines] [--no-speed]
Results are recorded in bench/README.md.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context

import cv2
import numpy as np
import timm
import torch
from skimage.feature import graycomatrix, graycoprops, local_binary_pattern
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupShuffleSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch.optim.swa_utils import update_bn

from leukmodels.data.synthetic import generate

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def speed(size: int, n: int) -> float:
    """Images per second for generate(n, size=size), best of two runs."""
    generate(8, size=size)  # warm-up (imports, allocator)
    best = float("inf")
    for seed in (0, 1):
        start = time.perf_counter()
        generate(n, size=size, seed=seed)
        best = min(best, time.perf_counter() - start)
    return n / best


def thumbnails(images: np.ndarray, side: int = 8) -> np.ndarray:
    """(N, side*side*3) float features: area-averaged thumbnails of every image."""
    small = [cv2.resize(im, (side, side), interpolation=cv2.INTER_AREA) for im in images]
    return np.stack(small).reshape(len(images), -1).astype(np.float64)


def _grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def histograms(images: np.ndarray) -> np.ndarray:
    """(N, 16) grey-level histograms (counts)."""
    return np.stack([np.histogram(_grey(im), 16, (0, 256))[0] for im in images]).astype(float)


def lbp(images: np.ndarray) -> np.ndarray:
    """(N, 54) uniform LBP histograms at three radii."""
    rows = []
    for im in images:
        grey, parts = _grey(im), []
        for points, radius in ((8, 1), (16, 2), (24, 3)):
            codes = local_binary_pattern(grey, points, radius, "uniform")
            parts.append(np.histogram(codes, points + 2, (0, points + 2))[0] / codes.size)
        rows.append(np.concatenate(parts))
    return np.stack(rows)


def glcm(images: np.ndarray) -> np.ndarray:
    """(N, 72) grey-level co-occurrence properties (6 properties x 3 distances x 4 angles)."""
    props = ("contrast", "dissimilarity", "homogeneity", "energy", "correlation", "ASM")
    angles = [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4]
    rows = []
    for im in images:
        levels = (_grey(im) // 8).astype(np.uint8)
        m = graycomatrix(levels, [1, 2, 4], angles, levels=32, symmetric=True, normed=True)
        rows.append(np.concatenate([graycoprops(m, p).ravel() for p in props]))
    return np.stack(rows)


FEATURES = {"logreg 8x8": thumbnails, "histogram": histograms, "LBP": lbp, "GLCM": glcm}


def baseline_accuracy(
    classes: int, splits: int, difficulty: str, n: int = 2000, patients: int = 40
) -> dict[str, list[float]]:
    """Test accuracy of a linear model on each feature set, one value per grouped split."""
    data = generate(n, classes=classes, size=64, seed=0, patients=patients, difficulty=difficulty)
    out = {}
    for name, features in FEATURES.items():
        out[name] = _logreg(features(data.images), data.labels, data.patients, splits)
    return out


def _logreg(x: np.ndarray, y: np.ndarray, groups: np.ndarray, splits: int) -> list[float]:
    accs = []
    cv = GroupShuffleSplit(n_splits=splits, test_size=0.2, random_state=0)
    for train, test in cv.split(x, y, groups=groups):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
        model.fit(x[train], y[train])
        accs.append(float(model.score(x[test], y[test])))
    return accs


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float NCHW, scaled to [0, 1] and ImageNet-normalised."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    return (x - IMAGENET_MEAN) / IMAGENET_STD


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Eval-mode accuracy, in batches of 100."""
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x[i : i + 100]).argmax(1) for i in range(0, len(y), 100)])
    return float((pred == y).float().mean())


@dataclass(frozen=True)
class Protocol:
    """How the bench trains its CNN (defaults: Adam 1e-3, batch 32, flips, constant lr)."""

    epochs: int = 6
    n_train: int = 320
    augment: str = "flip"  # "flip": random h/v flips; "d4": flips and transposes (8 poses);
    # "rotate": a random flip and a rotation by any angle (bilinear, border padding)
    schedule: str = "constant"  # or "cosine": lr annealed to 0 over all steps
    batch: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0  # decoupled (AdamW) when > 0
    label_smoothing: float = 0.0
    scale: float = 0.0  # "rotate" only: zoom by a factor drawn from [1 - scale, 1 + scale]
    eval_every: int = 0  # print the test accuracy every so many epochs (monitoring only)
    fresh: bool = False  # new training images (other seed, other patients) every epoch


def _augment(xb: torch.Tensor, kind: str, scale: float = 0.0) -> torch.Tensor:
    """Random flips (and, for "d4", transposes: all 8 right-angle poses) of a batch;
    "rotate": a random flip, then a rotation by an angle drawn from [0, 2 pi) and a
    zoom by a factor from [1 - scale, 1 + scale] (bilinear, border padding)."""
    flip = torch.rand(2, len(xb)) < 0.5
    xb = torch.where(flip[0].view(-1, 1, 1, 1), xb.flip(3), xb)
    if kind == "rotate":
        angle = torch.rand(len(xb)) * (2 * torch.pi)
        zoom = 1.0 + scale * (2 * torch.rand(len(xb)) - 1)
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        zero = torch.zeros_like(cos)
        theta = torch.stack([cos, -sin, zero, sin, cos, zero], 1).view(-1, 2, 3)
        grid = torch.nn.functional.affine_grid(theta, list(xb.shape), align_corners=False)
        return torch.nn.functional.grid_sample(
            xb, grid, mode="bilinear", padding_mode="border", align_corners=False
        )
    xb = torch.where(flip[1].view(-1, 1, 1, 1), xb.flip(2), xb)
    if kind == "d4":
        swap = torch.rand(len(xb)) < 0.5
        xb = torch.where(swap.view(-1, 1, 1, 1), xb.transpose(2, 3), xb)
    return xb


def cnn_accuracy(
    classes: int, seed: int, difficulty: str = "standard", protocol: Protocol = Protocol()
) -> tuple[float, float, float]:
    """resnet18 from scratch: (test accuracy, with re-estimated BN, training s)."""
    kw = {"classes": classes, "size": 64, "patients": 40, "difficulty": difficulty}
    train = generate(protocol.n_train, seed=1000 + seed, **kw)
    test = generate(400, seed=2000 + seed, **kw)
    torch.manual_seed(seed)
    model = timm.create_model("resnet18", pretrained=False, num_classes=classes)
    if protocol.weight_decay > 0:
        opt = torch.optim.AdamW(
            model.parameters(), lr=protocol.lr, weight_decay=protocol.weight_decay
        )
    else:
        opt = torch.optim.Adam(model.parameters(), lr=protocol.lr)
    b = protocol.batch
    steps = protocol.epochs * -(-protocol.n_train // b)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    x, y = to_tensor(train.images), torch.from_numpy(train.labels)
    xt, yt = to_tensor(test.images), torch.from_numpy(test.labels)
    seconds = 0.0
    for epoch in range(protocol.epochs):
        start = time.perf_counter()
        if protocol.fresh and epoch > 0:
            train = generate(protocol.n_train, seed=100_000 + 1000 * seed + epoch, **kw)
            x, y = to_tensor(train.images), torch.from_numpy(train.labels)
        model.train()
        order = torch.randperm(len(y))
        total = 0.0
        for i in range(0, len(y), b):
            idx = order[i : i + b]
            loss = torch.nn.functional.cross_entropy(
                model(_augment(x[idx], protocol.augment, protocol.scale)),
                y[idx],
                label_smoothing=protocol.label_smoothing,
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            if protocol.schedule == "cosine":
                cosine.step()
        seconds += time.perf_counter() - start
        if protocol.eval_every and (epoch + 1) % protocol.eval_every == 0:
            print(
                f"    seed {seed} epoch {epoch + 1}: train loss {total / len(y):.3f}, "
                f"test {accuracy(model, xt, yt):.1%}, {seconds:.0f} s",
                flush=True,
            )
    plain = accuracy(model, xt, yt)
    update_bn([x[i : i + b] for i in range(0, len(x), b)], model)  # precise BN
    return plain, accuracy(model, xt, yt), seconds


def span(values: list[float]) -> str:
    return f"{np.mean(values):6.1%} ({min(values):5.1%}-{max(values):5.1%})"


def _threads(n: int) -> None:
    torch.set_num_threads(n)
    cv2.setNumThreads(n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--difficulty", nargs="+", default=["standard", "hard"])
    parser.add_argument(
        "--cnn-seeds", "--repeats", dest="repeats", type=int, default=5, help="CNN runs"
    )
    parser.add_argument("--splits", type=int, default=5, help="grouped logreg splits")
    parser.add_argument("--baseline-n", type=int, default=2000, help="baseline images")
    parser.add_argument("--baseline-patients", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--n-train", "--train-n", dest="train_n", type=int, default=320)
    parser.add_argument("--augment", choices=["flip", "d4", "rotate"], default="flip")
    parser.add_argument("--schedule", choices=["constant", "cosine"], default="constant")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.0, help="> 0: AdamW")
    parser.add_argument("--label-smoothing", type=float, default=0.0)
    parser.add_argument("--scale", type=float, default=0.0, help="zoom jitter (rotate)")
    parser.add_argument(
        "--fresh", action="store_true", help="new --n-train training images every epoch"
    )
    parser.add_argument("--seed0", type=int, default=0, help="first CNN seed")
    parser.add_argument(
        "--eval-every", type=int, default=0, help="print test accuracy every N epochs"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch/OpenCV threads per job")
    parser.add_argument("--jobs", type=int, default=1, help="CNN runs at a time (processes)")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--no-cnn", action="store_true", help="baselines only")
    parser.add_argument("--no-baselines", action="store_true", help="CNN only")
    args = parser.parse_args()
    _threads(args.threads)

    if not args.no_speed:
        print(f"generation speed ({args.threads} threads)")
        for size, n in ((64, 2000), (224, 200)):
            print(f"  {size:>3} px: {speed(size, n):8.0f} images/s", flush=True)
    rows = []
    for difficulty in args.difficulty:
        for classes in args.classes:
            rows.append(_one(classes, difficulty, args))
    print()
    names = [] if args.no_baselines else list(FEATURES)
    print(f"difficulty | classes | {' | '.join(names)} | resnet18 | precise BN | s/run")
    for row in rows:
        print(" | ".join(row))


def _one(classes: int, difficulty: str, args: argparse.Namespace) -> list[str]:
    """One table row: baselines (and the CNN unless --no-cnn) at `classes`, `difficulty`."""
    base = {}
    if not args.no_baselines:
        base = baseline_accuracy(
            classes, args.splits, difficulty, args.baseline_n, args.baseline_patients
        )
    for name, accs in base.items():
        print(f"  {difficulty}, {classes} classes, {name}: {' '.join(f'{a:.1%}' for a in accs)}")
    row = [difficulty, str(classes), *(span(a) for a in base.values())]
    if args.no_cnn:
        return row
    protocol = Protocol(
        epochs=args.epochs,
        n_train=args.train_n,
        augment=args.augment,
        schedule=args.schedule,
        batch=args.batch,
        lr=args.lr,
        weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing,
        scale=args.scale,
        eval_every=args.eval_every,
        fresh=args.fresh,
    )
    runs = []
    with ProcessPoolExecutor(
        args.jobs, get_context("spawn"), initializer=_threads, initargs=(args.threads,)
    ) as pool:
        seeds = range(args.seed0, args.seed0 + args.repeats)
        jobs = [pool.submit(cnn_accuracy, classes, s, difficulty, protocol) for s in seeds]
        for seed, job in zip(seeds, jobs, strict=True):
            runs.append(job.result())
            plain, precise, secs = runs[-1]
            print(
                f"  {difficulty}, {classes} classes, seed {seed}: resnet18 {plain:.1%}, "
                f"precise BN {precise:.1%}, {secs:.0f} s",
                flush=True,
            )
    plain, precise, secs = (list(v) for v in zip(*runs, strict=True))
    return [*row, span(plain), span(precise), f"{np.mean(secs):.0f}"]


if __name__ == "__main__":
    main()
