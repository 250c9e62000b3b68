"""Hostile datasets: every bad folder or manifest is refused with exit 2 and one message.

Each case builds a small dataset on disk (real image files, links, modes) and runs it
through ``leuksearch trial`` in-process: the data is prepared (resolved, decoded,
checked by the leakage guard, split) before any model is built, so every case ends
there. A few run through ``leuksearch run``, whose driver checks the data before Ray
starts.
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from search.cli import main

SPACE = "study: bad\ndata:\n  image_size: 32\nspace:\n  lr: 0.01\n"


def png(path: Path, seed: int = 0, size: int = 20) -> Path:
    """A real PNG of random pixels (distinct seeds give unrelated images)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def bomb(path: Path, width: int, height: int) -> Path:
    """A ~100-byte PNG whose header claims `width` x `height` pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\0" * 1024)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )
    return path


def folder(root: Path, counts: dict[str, int] | None = None, seed: int = 0) -> Path:
    """An ImageFolder with `counts` images per class (default two classes of four)."""
    for c, (name, n) in enumerate((counts or {"blast": 4, "normal": 4}).items()):
        for i in range(n):
            png(root / name / f"{name}{i}.png", seed=seed + 100 * c + i)
    return root


def manifest(root: Path, rows: list[str], header: str = "path,label") -> Path:
    """A CSV manifest in `root` (images it names are made by the caller)."""
    path = root / "data.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _imgs(root: Path, n: int = 4) -> list[str]:
    return [png(root / f"i{k}.png", seed=50 + k).name for k in range(n)]


# Each builder makes a dataset under the folder it is given and returns (--data, fragment).
Builder = Callable[[Path], tuple[str, str]]


def no_such_path(t: Path) -> tuple[str, str]:
    return str(t / "nowhere"), "neither 'synthetic', a registry name"


def empty_folder(t: Path) -> tuple[str, str]:
    (t / "d").mkdir()
    return str(t / "d"), "holds nothing usable"


def loose_images(t: Path) -> tuple[str, str]:
    png(t / "d" / "a.png")
    return str(t / "d"), "1 images but no class subfolders"


def single_class(t: Path) -> tuple[str, str]:
    return str(folder(t / "d", {"blast": 4})), "has only one class folder ('blast')"


def empty_class(t: Path) -> tuple[str, str]:
    d = folder(t / "d")
    (d / "other").mkdir()
    (d / "other" / "notes.txt").write_text("no images here")
    return str(d), "class folder(s) ['other']"


def hidden_classes_only(t: Path) -> tuple[str, str]:
    folder(t / "d", {".blast": 3, "_normal": 3})
    return str(t / "d"), "holds nothing usable"


def zero_byte_image(t: Path) -> tuple[str, str]:
    d = folder(t / "d")
    (d / "blast" / "empty.png").write_bytes(b"")
    return str(d), "empty.png: UnidentifiedImageError"


def text_named_png(t: Path) -> tuple[str, str]:
    d = folder(t / "d")
    (d / "normal" / "fake.png").write_text("this is not a picture")
    return str(d), "fake.png: UnidentifiedImageError"


def truncated_png(t: Path) -> tuple[str, str]:
    d = folder(t / "d")
    whole = png(t / "x.png", seed=9, size=64).read_bytes()
    (d / "normal" / "cut.png").write_bytes(whole[: len(whole) // 2])
    return str(d), "1 unreadable image(s)"


def every_image_unreadable(t: Path) -> tuple[str, str]:
    for name in ("blast", "normal"):
        (t / "d" / name).mkdir(parents=True)
        (t / "d" / name / "a.png").write_bytes(b"\x89PNG garbage")
    return str(t / "d"), "none of the 2 images of d could be decoded"


def decompression_bomb(t: Path) -> tuple[str, str]:
    d = folder(t / "d")
    bomb(d / "blast" / "bomb.png", 100_000, 100_000)
    return str(d), "bomb.png: DecompressionBombError"


def pixel_bomb_under_pillow_limit(t: Path) -> tuple[str, str]:
    d = folder(t / "d")
    bomb(d / "normal" / "big.png", 9_000, 8_000)  # 72 M pixels: under Pillow's 89 M warning
    return str(d), "9000 x 8000 pixels is more than 64,000,000"


def symlink_loop_to_parent(t: Path) -> tuple[str, str]:
    d = folder(t / "d")
    (d / "blast" / "again").symlink_to(d / "blast", target_is_directory=True)
    return str(d), "again is a symbolic link loop"


def symlink_loop_to_root(t: Path) -> tuple[str, str]:
    d = folder(t / "d")
    (d / "normal" / "up").symlink_to(d, target_is_directory=True)
    return str(d), "up is a symbolic link loop"


def image_link_loop(t: Path) -> tuple[str, str]:
    d = folder(t / "d")
    (d / "blast" / "a.png").symlink_to(d / "blast" / "b.png")
    (d / "blast" / "b.png").symlink_to(d / "blast" / "a.png")
    return str(d), "a.png is a symbolic link that leads nowhere"


def broken_image_link(t: Path) -> tuple[str, str]:
    d = folder(t / "d")
    (d / "normal" / "gone.png").symlink_to(t / "deleted.png")
    return str(d), "gone.png is a symbolic link that leads nowhere"


def same_image_in_two_classes(t: Path) -> tuple[str, str]:
    d = folder(t / "d")
    (d / "normal" / "copy.png").write_bytes((d / "blast" / "blast2.png").read_bytes())
    return str(d), "the same image is in two classes: " + str(d / "blast" / "blast2.png")


def linked_image_in_two_classes(t: Path) -> tuple[str, str]:
    d = folder(t / "d")
    (d / "normal" / "link.png").symlink_to(d / "blast" / "blast0.png")
    return str(d), f"and {d / 'normal' / 'link.png'} (class 'normal')"


def manifest_lacks_label(t: Path) -> tuple[str, str]:
    return str(manifest(t, _imgs(t), header="path")), "lacks column(s) ['label']"


def manifest_without_rows(t: Path) -> tuple[str, str]:
    return str(manifest(t, [])), "has no rows"


def manifest_names_missing_file(t: Path) -> tuple[str, str]:
    rows = [f"{p},{k % 2}" for k, p in enumerate(_imgs(t))] + ["missing.png,0"]
    return str(manifest(t, rows)), "names 1 missing file(s)"


def manifest_names_looping_link(t: Path) -> tuple[str, str]:
    (t / "loop.png").symlink_to(t / "loop.png")
    rows = [f"{p},{k % 2}" for k, p in enumerate(_imgs(t))] + ["loop.png,0"]
    return str(manifest(t, rows)), "loop.png (a symbolic link that leads nowhere"


def manifest_single_class(t: Path) -> tuple[str, str]:
    return str(manifest(t, [f"{p},a" for p in _imgs(t)])), "has only one class (['a'])"


def manifest_empty_label(t: Path) -> tuple[str, str]:
    rows = [f"{p},{k % 2}" for k, p in enumerate(_imgs(t))] + [f"{_imgs(t)[0]},"]
    return str(manifest(t, rows)), "rows with an empty label"


def manifest_partial_split(t: Path) -> tuple[str, str]:
    rows = [f"{p},{k % 2},{'train' if k else ''}" for k, p in enumerate(_imgs(t))]
    return str(manifest(t, rows, "path,label,split")), "split column is empty in some rows only"


def manifest_same_file_in_two_splits(t: Path) -> tuple[str, str]:
    names = _imgs(t)
    rows = [f"{p},{k % 2},train" for k, p in enumerate(names)] + [f"{names[1]},1,test"]
    path = manifest(t, rows, "path,label,split")
    return str(path), "the same image is in two of the dataset's own splits"


def manifest_not_utf8(t: Path) -> tuple[str, str]:
    path = t / "data.csv"
    path.write_bytes(b"path,label\n\xff\xfe\x00bad,\x80\x81\n")
    return str(path), "is not UTF-8 text"


def manifest_is_a_folder(t: Path) -> tuple[str, str]:
    (t / "data.csv").mkdir()
    return str(t / "data.csv"), "does not exist"


def registry_dataset_missing(t: Path) -> tuple[str, str]:
    return "all_idb2", "dataset 'all_idb2' not found"


def registry_layout_wrong(t: Path) -> tuple[str, str]:
    png(t / "ALL_IDB2" / "Im001_1.tif")  # the images belong in ALL_IDB2/img/
    return "all_idb2", "(found, but no img/ inside)"


def unreadable_file(t: Path) -> tuple[str, str]:
    if os.geteuid() == 0:
        pytest.skip("running as root: mode 000 does not stop root from reading a file")
    d = folder(t / "d")
    os.chmod(d / "blast" / "blast1.png", 0)
    return str(d), "blast1.png: PermissionError"


def cache_under_a_file(t: Path) -> tuple[str, str]:
    (t / "plain").write_text("a file, not a folder")
    os.environ["LEUKSEARCH_CACHE"] = str(t / "plain" / "cache")  # restored by the fixture
    return str(folder(t / "d")), "cannot write the decode cache"


CASES: list[Builder] = [
    no_such_path, empty_folder, loose_images, single_class, empty_class, hidden_classes_only,
    zero_byte_image, text_named_png, truncated_png, every_image_unreadable, decompression_bomb,
    pixel_bomb_under_pillow_limit, symlink_loop_to_parent, symlink_loop_to_root, image_link_loop,
    broken_image_link, same_image_in_two_classes, linked_image_in_two_classes,
    manifest_lacks_label, manifest_without_rows, manifest_names_missing_file,
    manifest_names_looping_link, manifest_single_class, manifest_empty_label,
    manifest_partial_split, manifest_same_file_in_two_splits, manifest_not_utf8,
    manifest_is_a_folder, registry_dataset_missing, registry_layout_wrong, unreadable_file,
    cache_under_a_file,
]  # fmt: skip


def run_cli(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.fixture(scope="module", autouse=True)
def _imported() -> None:
    """Import what ``trial`` imports once, so a case's time is its own (not torch's import)."""
    import leukmodels.train  # noqa: F401
    import search.commands.trial  # noqa: F401


@pytest.fixture
def space_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LEUKSEARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LEUKSEARCH_DATA", str(tmp_path / "roots"))
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    return path


def assert_one_message(code: int, out: str, err: str, fragment: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err and out == ""
    assert fragment in err, err
    lines = [line for line in err.splitlines() if line.startswith("leuksearch")]
    assert len(lines) == 1, err
    assert fragment in lines[0], err


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) >= 20
    assert len({c.__name__ for c in CASES}) == len(CASES)


@pytest.mark.parametrize("build", CASES, ids=[c.__name__ for c in CASES])
def test_bad_dataset_exits_2_with_one_message(
    tmp_path: Path, space_file: Path, capsys, build: Builder
) -> None:
    work = tmp_path / "data"
    work.mkdir()
    data, fragment = build(work)
    start = time.perf_counter()
    code = run_cli(["trial", str(space_file), "--data", data, "--data-root", str(work)])
    seconds = time.perf_counter() - start
    assert_one_message(code, *capsys.readouterr(), fragment)
    assert seconds < 10, f"{build.__name__} took {seconds:.1f}s"


@pytest.mark.parametrize(
    "build", [symlink_loop_to_parent, same_image_in_two_classes, decompression_bomb]
)
def test_the_driver_refuses_bad_data_before_ray_starts(
    tmp_path: Path, space_file: Path, capsys, build: Builder
) -> None:
    import ray

    work = tmp_path / "data"
    work.mkdir()
    data, fragment = build(work)
    db = f"sqlite:///{tmp_path / 'ls.db'}"
    code = run_cli(["run", str(space_file), "--data", data, "--db", db])
    assert_one_message(code, *capsys.readouterr(), fragment)
    assert not ray.is_initialized()
    assert not (tmp_path / "runs").exists()
