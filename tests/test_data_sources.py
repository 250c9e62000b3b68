"""Dataset resolution: ImageFolder, CSV manifest, the registry's layouts, error messages."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from leukmodels.config import DataSpec
from leukmodels.data.folder import read_manifest, scan_image_folder
from leukmodels.data.registry import cnmc_patient, data_roots, resolve_dataset
from leukmodels.errors import DataError, UserError


def _img(path: Path, size: tuple[int, int] = (24, 20), value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(abs(hash(path.name)) % 2**32)
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8) // 2 + value // 2
    Image.fromarray(pixels).save(path)
    return path


# --- ImageFolder ---------------------------------------------------------------------------
def test_image_folder_classes_recursive_and_ignored(tmp_path: Path) -> None:
    _img(tmp_path / "blast" / "a.png")
    _img(tmp_path / "blast" / "nested" / "b.JPG")
    _img(tmp_path / "normal" / "c.tif")
    _img(tmp_path / "normal" / "_0_12.bmp")  # '_' files are data (Kaggle names)
    _img(tmp_path / "normal" / ".hidden.png")
    (tmp_path / "normal" / "readme.txt").write_text("not an image")
    _img(tmp_path / "_masks" / "normal" / "c.png")
    _img(tmp_path / ".hidden" / "d.png")
    src = scan_image_folder(tmp_path)
    assert src.class_names == ["blast", "normal"]
    assert sorted(p.name for p in src.paths) == ["_0_12.bmp", "a.png", "b.JPG", "c.tif"]
    assert src.labels.tolist() == [0, 0, 1, 1]
    assert src.patients is None and src.predefined is None


def test_image_folder_fingerprint_tracks_files(tmp_path: Path) -> None:
    a = _img(tmp_path / "x" / "a.png")
    _img(tmp_path / "y" / "b.png")
    first = scan_image_folder(tmp_path).fingerprint
    assert scan_image_folder(tmp_path).fingerprint == first
    os.utime(a, ns=(1, 1))
    assert scan_image_folder(tmp_path).fingerprint != first


@pytest.mark.parametrize(
    "layout, expected",
    [
        ({}, "nothing usable"),
        ({"a.png": None}, "no class subfolders"),
        ({"only/a.png": None}, "only one class"),
        ({"x/a.png": None, "empty/": None}, "hold no images"),
    ],
)
def test_image_folder_bad_layouts(tmp_path: Path, layout: dict, expected: str) -> None:
    for rel in layout:
        if rel.endswith("/"):
            (tmp_path / rel).mkdir(parents=True)
        else:
            _img(tmp_path / rel)
    with pytest.raises(DataError, match=expected) as err:
        scan_image_folder(tmp_path)
    assert "<folder>/<class>/<image>" in str(err.value)


# --- CSV manifest --------------------------------------------------------------------------
def test_manifest_columns(tmp_path: Path) -> None:
    for name in ("a", "b", "c", "d"):
        _img(tmp_path / "imgs" / f"{name}.png")
    _img(tmp_path / "masks" / "a.png")
    (tmp_path / "list.csv").write_text(
        "path,label,patient,split,mask\n"
        "imgs/a.png,hem,P1,Training,masks/a.png\n"
        "imgs/b.png,all,P2,test,\n"
        "imgs/c.png,all,,val,\n"
        f"{tmp_path / 'imgs' / 'd.png'},hem,P1,train,\n"
    )
    src = read_manifest(tmp_path / "list.csv")
    assert src.class_names == ["all", "hem"]
    assert src.labels.tolist() == [1, 0, 0, 1]
    assert src.predefined.tolist() == ["train", "test", "val", "train"]
    assert src.patients[0] == "P1" and src.patients[3] == "P1"
    assert src.patients[2] not in ("", "P1", "P2")  # no patient: its own group
    assert src.mask_paths[0] == tmp_path / "masks" / "a.png" and src.mask_paths[1] is None


def test_manifest_errors(tmp_path: Path) -> None:
    _img(tmp_path / "a.png")
    (tmp_path / "nolabel.csv").write_text("path\na.png\n")
    with pytest.raises(DataError, match=r"lacks column\(s\) \['label'\]"):
        read_manifest(tmp_path / "nolabel.csv")
    (tmp_path / "missing.csv").write_text("path,label\na.png,x\ngone.png,y\n")
    with pytest.raises(DataError, match="gone.png"):
        read_manifest(tmp_path / "missing.csv")
    with pytest.raises(DataError, match="does not exist"):
        resolve_dataset(DataSpec(dataset=str(tmp_path / "absent.csv")))


# --- registry ------------------------------------------------------------------------------
def test_cnmc_patient_ids() -> None:
    assert cnmc_patient("UID_11_10_1_all.bmp") == "11"
    assert cnmc_patient("UID_H10_43_1_hem.bmp") == "H10"
    assert cnmc_patient("random.bmp") is None


def _cnmc(root: Path) -> None:
    base = root / "C-NMC_Leukemia" / "training_data"
    for fold in range(3):
        for cell in range(2):
            _img(base / f"fold_{fold}" / "all" / f"UID_{fold + 1}_{cell}_1_all.bmp")
            _img(base / f"fold_{fold}" / "hem" / f"UID_H{fold + 1}_{cell}_1_hem.bmp")


def test_cnmc2019_all_folds_and_one_fold(tmp_path: Path) -> None:
    _cnmc(tmp_path)
    src = resolve_dataset(DataSpec(dataset="cnmc2019", root=str(tmp_path)))
    assert src.class_names == ["hem", "all"]
    assert len(src) == 12
    assert sorted(set(src.predefined)) == ["fold_0", "fold_1", "fold_2"]
    hem = src.patients[src.labels == 0]
    assert set(hem) == {"H1", "H2", "H3"}
    assert set(src.patients[src.labels == 1]) == {"1", "2", "3"}
    one = resolve_dataset(DataSpec(dataset="C-NMC", root=str(tmp_path), subset="fold_1"))
    assert len(one) == 4 and one.predefined is None and set(one.patients) == {"2", "H2"}
    with pytest.raises(UserError, match="fold_0"):
        resolve_dataset(DataSpec(dataset="cnmc2019", root=str(tmp_path), subset="fold_7"))


def test_all_idb2_labels_from_names_case_insensitive_folders(tmp_path: Path) -> None:
    img = tmp_path / "all-idb2" / "IMG"
    _img(img / "Im001_1.tif")
    _img(img / "Im002_0.tif")
    _img(img / "Im003_1.tif")
    (img / "Thumbs.db").write_text("x")
    src = resolve_dataset(DataSpec(dataset="ALL_IDB2", root=str(tmp_path)))
    assert src.class_names == ["normal", "blast"]
    assert dict(zip([p.name for p in src.paths], src.labels.tolist(), strict=True)) == {
        "Im001_1.tif": 1,
        "Im002_0.tif": 0,
        "Im003_1.tif": 1,
    }


def test_blood_cells_predefined_split_double_nesting(tmp_path: Path) -> None:
    images = tmp_path / "blood-cells" / "dataset2-master" / "dataset2-master" / "images"
    for part in ("TRAIN", "TEST"):
        for cls in ("EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"):
            _img(images / part / cls / f"_0_{part}_{cls}.jpeg")
    _img(images / "TEST_SIMPLE" / "EOSINOPHIL" / "x.jpeg")
    src = resolve_dataset(DataSpec(dataset="blood_cells_kaggle", root=str(tmp_path)))
    assert src.class_names == ["eosinophil", "lymphocyte", "monocyte", "neutrophil"]
    assert len(src) == 8
    assert sorted(src.predefined.tolist()) == ["test"] * 4 + ["train"] * 4


def test_all_taleqani_classes_and_segmented_masks(tmp_path: Path) -> None:
    base = tmp_path / "all_taleqani"
    folders = ["Benign", "[Malignant] early Pre-B", "[Malignant] Pre-B", "[Malignant] Pro-B"]
    for i, folder in enumerate(folders):
        _img(base / "Original" / folder / f"img{i}.jpg")
    _img(base / "Segmented" / "benign" / "img0.png")  # other case and extension
    src = resolve_dataset(DataSpec(dataset="all_taleqani", root=str(tmp_path)))
    assert src.class_names == ["Benign", "Early", "Pre", "Pro"]
    assert src.labels.tolist() == [0, 1, 2, 3]
    assert src.mask_paths[0] == base / "Segmented" / "benign" / "img0.png"
    assert src.mask_paths[1] is None


def test_munich_and_mixture(tmp_path: Path) -> None:
    for cls in ("MYB", "MOB", "NGS"):
        _img(tmp_path / "AML-Cytomorphology_LMU" / cls / f"{cls}_0001.tiff")
    _img(tmp_path / "ALL_IDB2" / "img" / "Im001_1.tif")
    _img(tmp_path / "ALL_IDB2" / "img" / "Im002_0.tif")
    munich = resolve_dataset(DataSpec(dataset="munich_aml", root=str(tmp_path)))
    assert munich.class_names == ["MOB", "MYB", "NGS"]
    mix = resolve_dataset(DataSpec(dataset="mixture_leukemia", root=str(tmp_path)))
    assert mix.class_names == ["normal", "all", "aml"]
    assert np.bincount(mix.labels).tolist() == [1, 1, 2]  # NGS is not AML


def test_missing_dataset_lists_every_place_looked(tmp_path: Path, monkeypatch) -> None:
    env = tmp_path / "env"
    monkeypatch.setenv("LEUKSEARCH_DATA", str(env))
    spec_root = tmp_path / "given"
    with pytest.raises(DataError) as err:
        resolve_dataset(DataSpec(dataset="cnmc2019", root=str(spec_root)))
    text = str(err.value)
    assert str(spec_root) in text and str(env) in text
    assert str(Path("~/.leuksearch/data").expanduser()) in text
    assert "training_data/fold_{0,1,2}/{all,hem}" in text
    assert data_roots(str(spec_root))[:2] == [spec_root, env]


def test_found_top_folder_with_wrong_inside_says_so(tmp_path: Path) -> None:
    (tmp_path / "C-NMC_Leukemia" / "other").mkdir(parents=True)
    with pytest.raises(DataError, match="found, but no training_data/ inside"):
        resolve_dataset(DataSpec(dataset="cnmc2019", root=str(tmp_path)))


def test_unknown_name_that_is_no_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="neither 'synthetic', a registry name"):
        resolve_dataset(DataSpec(dataset=str(tmp_path / "nope")))


def test_synthetic_is_lazy_and_fingerprinted() -> None:
    spec = DataSpec(dataset="synthetic", n=16, image_size=32, patients=4)
    src = resolve_dataset(spec)
    assert src.labels is None  # nothing generated yet
    assert src.fingerprint != resolve_dataset(spec.model_copy(update={"n": 24})).fingerprint
    loaded = src.load()
    assert loaded.images.shape == (16, 32, 32, 3) and loaded.masks.shape == (16, 32, 32)
    assert len(set(loaded.patients)) == 4 and loaded.fingerprint == src.fingerprint


def test_path_named_like_a_registry_entry_is_a_folder(tmp_path: Path) -> None:
    _img(tmp_path / "cnmc2019" / "a" / "x.png")
    _img(tmp_path / "cnmc2019" / "b" / "y.png")
    src = resolve_dataset(DataSpec(dataset=str(tmp_path / "cnmc2019")))
    assert src.class_names == ["a", "b"] and src.layout.startswith("<folder>/<class>")
