"""The decode cache: memory-mapped, keyed, atomic under races, strict about bad images."""

from __future__ import annotations

import contextlib
import multiprocessing
import pickle
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from leukmodels.config import DataSpec
from leukmodels.data import cache as cache_module
from leukmodels.data.arrays import SplitArrays
from leukmodels.data.cache import cache_root, load_or_decode
from leukmodels.data.decode import read_rgb
from leukmodels.data.registry import resolve_dataset
from leukmodels.data.synthetic import generate, write_imagefolder
from leukmodels.errors import DataError


def _jpeg_folder(root: Path, per_class: int = 6) -> Path:
    """Two classes of synthetic cells saved as JPEG at mixed sizes and aspect ratios."""
    data = generate(2 * per_class, classes=2, size=96, seed=5, patients=4)
    for i, (img, label) in enumerate(zip(data.images, data.labels, strict=True)):
        h, w = [(96, 96), (70, 120), (130, 90), (50, 50)][i % 4]
        out = root / data.class_names[label] / f"cell_{i}.jpg"
        out.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out), cv2.resize(img, (w, h))[..., ::-1])
    return root


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_decode_then_hit(tmp_path: Path) -> None:
    source = resolve_dataset(DataSpec(dataset=str(_jpeg_folder(tmp_path / "data"))))
    lines: list[str] = []
    first = load_or_decode(source, image_size=48, cache_dir=tmp_path / "c", log=lines.append)
    assert not first.hit and any("decoding 12 images ... 100%" in line for line in lines)
    assert first.images.shape == (12, 48, 48, 3) and first.images.dtype == np.uint8
    assert isinstance(first.images, np.memmap) and not first.images.flags.writeable
    assert first.labels.tolist() == source.labels.tolist()
    second = load_or_decode(source, image_size=48, cache_dir=tmp_path / "c", log=lines.append)
    assert second.hit and second.path == first.path
    assert lines[-1] == f"using cached decode {first.path}"
    assert np.array_equal(np.asarray(first.images), np.asarray(second.images))
    assert not list((tmp_path / "c").glob(".*.tmp"))  # no temporary files left behind


def test_key_covers_size_and_deterministic_preprocessing(tmp_path: Path) -> None:
    source = resolve_dataset(DataSpec(dataset=str(_jpeg_folder(tmp_path / "data", 3))))
    paths = {
        load_or_decode(source, image_size=32, cache_dir=tmp_path / "c", **kw).path
        for kw in ({}, {"clahe": True}, {"nucleus_crop": True}, {"limit": 4})
    }
    paths.add(load_or_decode(source, image_size=40, cache_dir=tmp_path / "c").path)
    assert len(paths) == 5


def test_cache_dir_from_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LEUKSEARCH_CACHE", str(tmp_path / "envcache"))
    assert cache_root(None) == tmp_path / "envcache"
    assert cache_root(tmp_path / "given") == tmp_path / "given"


def test_truncated_jpeg_is_named_and_skippable(tmp_path: Path) -> None:
    folder = _jpeg_folder(tmp_path / "data")
    bad = sorted((folder / "all").glob("*.jpg"))[0]
    _truncate(bad)
    source = resolve_dataset(DataSpec(dataset=str(folder)))
    with pytest.raises(DataError) as err:
        load_or_decode(source, image_size=32, cache_dir=tmp_path / "c")
    assert str(bad) in str(err.value) and "--skip-bad-images" in str(err.value)
    assert "1 unreadable image" in str(err.value)
    lines: list[str] = []
    skipped = load_or_decode(
        source, image_size=32, cache_dir=tmp_path / "c", skip_bad_images=True, log=lines.append
    )
    assert len(skipped) == 11 and len(skipped.bad_images) == 1 and str(bad) in skipped.bad_images[0]
    assert skipped.images.shape[0] == 11 and "skipped 1 unreadable image(s)" in lines
    assert bad not in [source.paths[i] for i in skipped.source_index]
    with pytest.raises(DataError, match="unreadable"):  # the cached list still stops a strict run
        load_or_decode(source, image_size=32, cache_dir=tmp_path / "c")


def test_many_bad_images_listed_first_20_and_counted(tmp_path: Path) -> None:
    for i in range(25):
        (tmp_path / "data" / ("a" if i % 2 else "b") / f"junk{i:02d}.png").parent.mkdir(
            parents=True, exist_ok=True
        )
        (tmp_path / "data" / ("a" if i % 2 else "b") / f"junk{i:02d}.png").write_bytes(b"no png")
    _jpeg_folder(tmp_path / "data", 2)
    source = resolve_dataset(DataSpec(dataset=str(tmp_path / "data")))
    with pytest.raises(DataError) as err:
        load_or_decode(source, image_size=16, cache_dir=tmp_path / "c")
    assert "25 unreadable image(s)" in str(err.value) and "and 5 more" in str(err.value)


def test_masks_from_manifest(tmp_path: Path) -> None:
    out = write_imagefolder(tmp_path / "set", n=8, size=40, patients=4, fmt="png")
    source = resolve_dataset(DataSpec(dataset=str(out / "manifest.csv")))
    decoded = load_or_decode(source, image_size=40, cache_dir=tmp_path / "c")
    truth = generate(8, size=40, patients=4).masks
    assert decoded.masks is not None and decoded.masks.shape == (8, 40, 40)
    assert np.array_equal(decoded.masks, truth)
    assert decoded.patients is not None and len(set(decoded.patients)) == 4


def _build_in_process(folder: str, cache_dir: str, queue) -> None:
    source = resolve_dataset(DataSpec(dataset=folder))
    decoded = load_or_decode(source, image_size=40, cache_dir=cache_dir, threads=1)
    queue.put((decoded.hit, str(decoded.path), int(np.asarray(decoded.images).sum())))


def test_two_processes_racing_both_succeed(tmp_path: Path) -> None:
    folder = _jpeg_folder(tmp_path / "data")
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_build_in_process, args=(str(folder), str(tmp_path / "c"), queue))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len({r[1] for r in results}) == 1 and len({r[2] for r in results}) == 1
    assert sorted(r[0] for r in results) == [False, True]  # one built, the other waited and reused


def test_race_without_lock_is_still_consistent(tmp_path: Path, monkeypatch) -> None:
    """Where locking is unavailable, concurrent builders each write temp files and rename."""
    monkeypatch.setattr(cache_module, "_locked", lambda path: contextlib.nullcontext())
    source = resolve_dataset(DataSpec(dataset=str(_jpeg_folder(tmp_path / "data"))))
    barrier = threading.Barrier(2)
    results: list = []

    def build() -> None:
        barrier.wait()
        decoded = load_or_decode(source, image_size=40, cache_dir=tmp_path / "c", threads=1)
        results.append((decoded.hit, np.asarray(decoded.images).copy()))

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 2 and np.array_equal(results[0][1], results[1][1])
    assert load_or_decode(source, image_size=40, cache_dir=tmp_path / "c").hit
    assert not list((tmp_path / "c").glob(".*.tmp"))


def test_split_arrays_pickle_by_file_name(tmp_path: Path) -> None:
    source = resolve_dataset(DataSpec(dataset=str(_jpeg_folder(tmp_path / "data"))))
    decoded = load_or_decode(source, image_size=64, cache_dir=tmp_path / "c")
    view = SplitArrays(decoded.images, np.array([3, 1]), decoded.labels[[3, 1]])
    blob = pickle.dumps(view)
    assert len(blob) < 2_000  # the file name, not 12 x 64 x 64 x 3 bytes
    back = pickle.loads(blob)
    assert isinstance(back.base, np.memmap)
    assert np.array_equal(back.image(0), np.asarray(decoded.images[3]))


def test_unwritable_cache_folder_is_a_data_error(tmp_path: Path) -> None:
    source = resolve_dataset(DataSpec(dataset=str(_jpeg_folder(tmp_path / "data", 2))))
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(DataError, match="cannot write the decode cache"):
        load_or_decode(source, image_size=16, cache_dir=blocker / "cache")


def test_sixteen_bit_greyscale_is_scaled_to_eight_bits(tmp_path: Path) -> None:
    values = np.linspace(0, 65535, 40 * 30).reshape(30, 40).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    rgb = read_rgb(tmp_path / "deep.png")
    assert rgb.shape == (30, 40, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0, 0] == 0 and rgb[-1, -1, 0] == 255 and (rgb[..., 0] == rgb[..., 2]).all()
