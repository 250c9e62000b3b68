"""prepare_data and the loaders, end to end on real image files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from leukmodels.config import DataSpec, SplitSpec, TrialParams
from leukmodels.data.prepare import (
    make_eval_loader,
    make_loaders,
    prepare_data,
    test_noise_sets,
)
from leukmodels.data.synthetic import generate
from leukmodels.errors import DataError, UserError


def _write(root: Path, counts: dict[str, int], seed: int = 0) -> Path:
    """JPEG microscope crops of mixed sizes: `counts` images per class folder."""
    total = sum(counts.values())
    data = generate(total, classes=2, size=80, seed=seed, patients=4)
    sizes = [(80, 80), (60, 100), (110, 70), (45, 45), (150, 120)]
    i = 0
    for name, count in counts.items():
        for k in range(count):
            h, w = sizes[i % len(sizes)]
            out = root / name / f"{name}_{k:03d}.jpg"
            out.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(out), cv2.resize(data.images[i], (w, h))[..., ::-1])
            i += 1
    return root


def _spec(folder: Path, tmp_path: Path, **kw) -> DataSpec:
    return DataSpec(dataset=str(folder), image_size=32, cache_dir=str(tmp_path / "cache"), **kw)


def test_acceptance_mixed_sizes_with_a_three_image_class(tmp_path: Path) -> None:
    folder = _write(tmp_path / "cells", {"blast": 30, "normal": 30, "rare": 3})
    spec = _spec(folder, tmp_path, split=SplitSpec(train=0.8, val=0.1, test=0.1), augment="basic")
    params = TrialParams(batch_size=8)
    lines: list[str] = []
    prepared = prepare_data(spec, params, log=lines.append)
    assert prepared.class_names == ["blast", "normal", "rare"]
    rare = prepared.class_names.index("rare")
    assert (prepared.train.labels == rare).sum() == 3
    assert rare not in prepared.val.labels and rare not in prepared.test.labels
    assert any(line.startswith("warning: class 'rare' has only 3 images") for line in lines)
    assert prepared.split.warnings and len(prepared.test) == 6 and len(prepared.val) == 6
    assert prepared.class_counts == {"blast": 24, "normal": 24, "rare": 3}
    assert not prepared.cache_hit

    train, val, test = make_loaders(prepared, params, seed=0)
    x, y = next(iter(train))
    assert x.dtype == torch.float32 and x.shape == (8, 3, 32, 32) and y.dtype == torch.int64
    assert -3 < float(x.mean()) < 3  # ImageNet-normalised, not 0-255
    assert sum(len(b[1]) for b in test) == 6 and sum(len(b[1]) for b in val) == 6

    again = prepare_data(spec, params, log=lines.append)
    assert again.cache_hit and lines[0].startswith("decoding")
    assert f"using cached decode {again.cache_path}" in lines
    assert again.split.hash == prepared.split.hash


def test_truncated_jpeg_stops_prepare_or_is_counted(tmp_path: Path) -> None:
    folder = _write(tmp_path / "cells", {"a": 10, "b": 10})
    bad = folder / "b" / "b_004.jpg"
    bad.write_bytes(bad.read_bytes()[:300])
    with pytest.raises(DataError, match="b_004.jpg"):
        prepare_data(_spec(folder, tmp_path), TrialParams())
    prepared = prepare_data(_spec(folder, tmp_path, skip_bad_images=True), TrialParams())
    assert len(prepared.bad_images) == 1 and "b_004.jpg" in prepared.bad_images[0]
    total = len(prepared.train) + len(prepared.val) + len(prepared.test)
    assert total == 19


def test_reinhard_target_uses_training_images_only(tmp_path: Path) -> None:
    folder = _write(tmp_path / "cells", {"a": 20, "b": 20})
    spec = _spec(folder, tmp_path, split=SplitSpec(group="none"))
    params = TrialParams(stain_norm="reinhard")
    before = prepare_data(spec, params)
    paths = sorted(folder.glob("*/*.jpg"))

    def invert(index: int) -> None:
        img = cv2.imread(str(paths[index]))
        cv2.imwrite(str(paths[index]), 255 - img)

    for i in before.test.index:  # rows are source indices here: nothing skipped or limited
        invert(int(i))
    after_test = prepare_data(spec, params)
    assert not after_test.cache_hit  # the files changed
    assert np.array_equal(after_test.split.test, before.split.test)
    assert after_test.stain_target == before.stain_target
    invert(int(before.split.train[0]))
    after_train = prepare_data(spec, params)
    assert after_train.stain_target != before.stain_target
    # the target is applied to every split
    test_pixels = before.test.images().reshape(-1, 32, 3).astype(np.float32) / 255
    lab = cv2.cvtColor(test_pixels, cv2.COLOR_RGB2LAB)
    assert np.allclose(lab.reshape(-1, 3).mean(0), before.stain_target.mean, atol=3)


def test_balancing_and_offline_noise_touch_train_only(tmp_path: Path) -> None:
    folder = _write(tmp_path / "cells", {"all": 40, "hem": 20})
    spec = _spec(folder, tmp_path, split=SplitSpec(group="none"))
    plain = prepare_data(spec, TrialParams())
    balanced = prepare_data(spec, TrialParams(balance="hsv_desat"))
    assert plain.class_counts == {"all": 32, "hem": 16}
    assert balanced.class_counts == {"all": 32, "hem": 32}
    assert len(balanced.val) == len(plain.val) and len(balanced.test) == len(plain.test)
    copy = balanced.train.image(len(balanced.train) - 1)  # the last row is a grey copy
    assert (copy[..., 0] == copy[..., 1]).all() and (copy[..., 1] == copy[..., 2]).all()
    noisy = prepare_data(spec, TrialParams(balance="hsv_desat", offline_noise=[3, 9]))
    assert noisy.class_counts == {"all": 96, "hem": 96}
    n = len(balanced.train)
    assert not np.array_equal(noisy.train.image(n), noisy.train.image(0))
    assert np.array_equal(noisy.train.image(n), noisy.train.image(n))  # fixed, every epoch


def test_loaders_shuffle_seeded_drop_singleton_and_colour_space(tmp_path: Path) -> None:
    folder = _write(tmp_path / "cells", {"a": 21, "b": 20})
    spec = _spec(folder, tmp_path, split=SplitSpec(train=0.8, val=0.1, test=0.1, group="none"))
    params = TrialParams(batch_size=4, color_space="lab")
    prepared = prepare_data(spec, params)
    assert len(prepared.train) % 4 == 1
    train, _, _ = make_loaders(prepared, params, seed=3)
    assert train.drop_last and len(train) == len(prepared.train) // 4
    first = [b[1].tolist() for b in make_loaders(prepared, params, seed=3)[0]]
    again = [b[1].tolist() for b in make_loaders(prepared, params, seed=3)[0]]
    other = [b[1].tolist() for b in make_loaders(prepared, params, seed=4)[0]]
    assert first == again and first != other
    x_lab = next(iter(make_loaders(prepared, params, seed=3)[1]))[0]
    x_rgb = next(iter(make_loaders(prepared, TrialParams(batch_size=4), seed=3)[1]))[0]
    assert x_lab.shape == x_rgb.shape == (4, 3, 32, 32) and not torch.equal(x_lab, x_rgb)


def test_test_noise_sweep_and_eval_loader(tmp_path: Path) -> None:
    folder = _write(tmp_path / "cells", {"a": 20, "b": 20})
    prepared = prepare_data(_spec(folder, tmp_path), TrialParams())
    sets = dict(test_noise_sets(prepared, [0, 2, 10], seed=0))
    clean = prepared.test.images()
    assert np.array_equal(sets[0.0], clean)
    diffs = [np.abs(sets[s].astype(int) - clean).mean() for s in (2.0, 10.0)]
    assert 0 < diffs[0] < diffs[1]
    loader = make_eval_loader(sets[10.0], prepared.test.labels, TrialParams(batch_size=64))
    x, y = next(iter(loader))
    assert x.shape == (len(clean), 3, 32, 32) and y.tolist() == prepared.test.labels.tolist()


def test_synthetic_with_masks_limit_and_workers(tmp_path: Path) -> None:
    spec = DataSpec(
        dataset="synthetic",
        n=120,
        patients=12,
        image_size=32,
        limit=60,
        workers=1,
        cache_dir=str(tmp_path / "cache"),
    )
    params = TrialParams(batch_size=8, nucleus_crop=True, augment=["hflip", {"rotate": 10}])
    prepared = prepare_data(spec, params)
    assert prepared.has_masks and prepared.split.grouped
    assert len(prepared.train) + len(prepared.val) + len(prepared.test) == 60
    train, val, _ = make_loaders(prepared, params, seed=0, with_masks=True)
    x, y, m = next(iter(train))
    assert (
        x.shape == (8, 3, 32, 32) and m.shape == (8, 32, 32) and set(m.unique().tolist()) <= {0, 1}
    )
    assert m.sum() > 0


def test_bad_augment_fails_before_decoding(tmp_path: Path) -> None:
    spec = DataSpec(dataset="synthetic", n=16, image_size=16, cache_dir=str(tmp_path / "c"))
    with pytest.raises(UserError, match="unknown augmentation 'warp'"):
        prepare_data(spec, TrialParams(augment=["warp"]))
    assert not (tmp_path / "c").exists()
