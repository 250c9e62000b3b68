"""The backbone registry: a backbone registered from this file alone works everywhere.

``tinynet`` (below) is the done-when of issue 10: registered here, it is usable in a space,
``describe``, ``profile`` and a trial without touching any other file. The built-in
adapters are checked against the models they build (stage counts, feature widths, native
SE stages, the attention at the declared end of each block's residual branch), and the
plugin hooks (``$LEUKSEARCH_PLUGINS``, the ``leuksearch.backbones`` entry points) in fresh
processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from leukmodels import sites as tables
from leukmodels.arch import build_model, count_attention
from leukmodels.backbones import (
    BUILTIN_FAMILIES,
    BackboneAdapter,
    backbone_names,
    get_backbone,
    register_backbone,
)
from leukmodels.blocks.attention import AttentionBlock
from leukmodels.config import TrialParams
from leukmodels.errors import UserError
from leukmodels.sites import sites
from search.cli import main

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
BUILTINS = [
    "resnet18",
    "resnet50",
    "mobilenetv4_conv_small",
    "mobilenetv4_conv_medium",
    "efficientnetv2_s",
    "mobilenetv1_100",
    "mobilenetv3_large_100",
    "densenet121",
    "ddrnet",
]
OWN_BLOCKS_OFF = {"ddrnet": {"csab": False}}
"""Parameters that switch off a backbone's own attention block (DDRNet's CSAB), so that
every AttentionBlock in the model is one the ``attention`` parameter placed."""


# --- a backbone that lives in this file only ------------------------------------------------


class TinyBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus a shortcut (1x1 conv when the shape changes), then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        same = cin == cout and stride == 1
        self.shortcut = nn.Identity() if same else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        branch = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(branch + self.shortcut(x))


@register_backbone("tinynet")
class TinyNet(BackboneAdapter):
    """A stem and 3 stages of residual blocks (8 x1, 16 x2, 32 x1 channels); the attention
    ends each block's residual branch (after ``bn2``, before the add)."""

    num_stages = 3
    feature_width = 32

    def create(self, params: TrialParams) -> tuple[nn.Module, int]:
        from leukmodels.backbones.modules import PooledBackbone

        body = nn.Sequential(
            nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU()),
            nn.Sequential(TinyBlock(8, 8, 1)),
            nn.Sequential(TinyBlock(8, 16, 2), TinyBlock(16, 16, 1)),
            nn.Sequential(TinyBlock(16, 32, 2)),
        )
        net = PooledBackbone(body, self.feature_width, params.pooling)
        return net, net.out_features

    def stages(self, model: nn.Module) -> list[list[nn.Module]]:
        return [list(model.body[i]) for i in range(1, self.num_stages + 1)]

    def branch_end(self, block: nn.Module) -> nn.Module:
        return block.bn2


TINY_SPACE = """
study: tinynet
data:
  dataset: synthetic
  n: 64
  patients: 8
  image_size: 32
  split: {kind: holdout, train: 0.5, val: 0.25, test: 0.25}
search:
  algorithm: tpe
  num_samples: 1
  metric: val_f1
space:
  backbone: tinynet
  attention: {choice: [none, scab]}
  placement: {subset: [stage1, stage2, stage3], when: "attention != 'none'"}
  optimizer: adam
  lr: 1.0e-3
  batch_size: 16
  epochs: 1
"""


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny models gain nothing from intra-op threads on a shared two-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def space_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LEUKSEARCH_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "tinynet.yaml"
    path.write_text(TINY_SPACE)
    return path


def test_registered_backbone_is_in_the_tables() -> None:
    assert backbone_names()[: len(BUILTINS)] == BUILTINS
    assert "tinynet" in backbone_names()
    assert sites("tinynet") == ["stage1", "stage2", "stage3"]
    # the tables are read from the registry when asked (a from-import is a snapshot)
    assert tables.STAGE_COUNTS["tinynet"] == 3
    assert "tinynet" not in tables.NATIVE_SE_STAGES and "tinynet" not in tables.DILATABLE
    assert tables.NATIVE_SE_STAGES["efficientnetv2_s"] == ("stage4", "stage5", "stage6")
    assert TrialParams(backbone="tinynet").backbone == "tinynet"


def test_describe_profile_and_trial_of_the_registered_backbone(
    space_file: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["describe", str(space_file), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    factors = {f["name"]: f for f in info["factors"]}
    assert factors["backbone"]["levels"] == ["tinynet"]
    assert factors["placement"]["n_levels"] == 7  # non-empty subsets of 3 stages

    profile = ["profile", str(space_file), "--input-size", "32", "--latency-runs", "1", "--json"]
    assert main(profile) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1 + 7 and {r["backbone"] for r in rows} == {"tinynet"}
    bare = next(r for r in rows if not r["placement"])
    full = next(r for r in rows if r["placement"] == ["stage1", "stage2", "stage3"])
    assert full["label"] == "tinynet+scab@stage1-3/both"
    assert full["params"] > bare["params"] > 0 and full["flops"] > bare["flops"] > 0

    params = json.dumps({"attention": "scab", "placement": ["stage2", "stage3"]})
    assert main(["trial", str(space_file), "--params", params, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"]["backbone"] == "tinynet"
    assert out["params"]["placement"] == ["stage2", "stage3"]
    assert 0.0 <= out["test"]["accuracy"] <= 1.0


def test_space_typos_list_the_registered_names(
    space_file: Path, capsys: pytest.CaptureFixture
) -> None:
    space_file.write_text(TINY_SPACE.replace("backbone: tinynet", "backbone: tinynett"))
    assert main(["describe", str(space_file)]) == 2
    err = capsys.readouterr().err
    assert "tinynett" in err and "did you mean 'tinynet'" in err
    assert "resnet18" in err and "densenet121" in err
    space_file.write_text(TINY_SPACE.replace("stage3]", "stage4]"))
    assert main(["describe", str(space_file)]) == 2
    assert "stage4 not a site of tinynet; its sites: stage1, stage2, stage3" in (
        capsys.readouterr().err
    )


def test_tinynet_attention_ends_the_residual_branch() -> None:
    model = build_model(TrialParams(backbone="tinynet", attention="scab"), 2).eval()
    block = model.backbone.body[2][1]
    assert isinstance(block.post_attn, AttentionBlock) and count_attention(model) == 4
    seen: dict[str, Tensor] = {}
    block.bn2.register_forward_hook(lambda m, a, out: seen.__setitem__("bn2", out), prepend=True)
    block.post_attn.register_forward_hook(lambda m, a, out: seen.__setitem__("attn", out))
    block.register_forward_pre_hook(lambda m, a: seen.__setitem__("in", a[0]))
    block.register_forward_hook(lambda m, a, out: seen.__setitem__("out", out))
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    assert not torch.allclose(seen["attn"], seen["bn2"])
    torch.testing.assert_close(seen["out"], torch.relu(seen["attn"] + seen["in"]))
    with pytest.raises(UserError, match="dilated.*tinynet.*resnet18"):
        build_model(TrialParams(backbone="tinynet", backbone_conv="dilated"), 2)
    with pytest.raises(UserError, match="tinynet has none"):
        build_model(TrialParams(backbone="tinynet", attention="se", native_se="replace"), 2)


# --- the registry itself ----------------------------------------------------------------------


def test_unknown_name_and_conflicting_registration() -> None:
    with pytest.raises(UserError, match=r"'resnet5'.*did you mean 'resnet50'.*densenet121"):
        get_backbone("resnet5")
    with pytest.raises(ValueError, match="tinynet.*already registered"):
        register_backbone("tinynet")(type("OtherTiny", (TinyNet,), {}))
    register_backbone("tinynet")(TinyNet)  # the same class again (a re-import) is fine
    assert type(get_backbone("tinynet")) is TinyNet
    with pytest.raises(TypeError, match="BackboneAdapter subclass"):
        register_backbone("notanadapter")(dict)
    with pytest.raises(ValueError, match="native_se_stages"):
        register_backbone("badse")(type("BadSE", (TinyNet,), {"native_se_stages": (4,)}))
    assert "badse" not in backbone_names()


def test_builtins_have_one_file_per_family() -> None:
    modules = {type(get_backbone(n)).__module__.rsplit(".", 1)[-1] for n in BUILTINS}
    assert modules == set(BUILTIN_FAMILIES)


SHORTCUTS = ("downsample", "shortcut")  # the skip path's own layers run after the branch


def _run_order(model: nn.Module, blocks: list[nn.Module]) -> list[int | str]:
    """Block index of each conv/BN of a block's branch as it runs, 'A' for each attention,
    consecutive repeats merged: [0, 'A', 1, 'A', ...] when every attention ends its branch."""
    log: list[int | str] = []
    attention = {
        id(m) for a in model.modules() if isinstance(a, AttentionBlock) for m in a.modules()
    }
    for i, block in enumerate(blocks):
        for name, m in block.named_modules():
            layer = isinstance(m, nn.Conv2d | nn.BatchNorm2d)
            if layer and id(m) not in attention and not any(s in name for s in SHORTCUTS):
                m.register_forward_hook(lambda m, a, out, i=i: log.append(i), prepend=True)
    for attn in (m for m in model.modules() if isinstance(m, AttentionBlock)):
        attn.register_forward_hook(lambda m, a, out: log.append("A"))
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    return [e for k, e in enumerate(log) if k == 0 or e != log[k - 1]]


@pytest.mark.parametrize("name", [*BUILTINS, "tinynet"])
def test_adapter_matches_the_built_model(name: str) -> None:
    """Declared stages, feature width and native-SE stages are what the model has; every
    attention input is the output of its block's declared branch end, and nothing of the
    branch runs after the attention (it ends the branch, before the skip add)."""
    adapter = get_backbone(name)
    own = OWN_BLOCKS_OFF.get(name, {})
    model = build_model(TrialParams(backbone=name, attention="scab", **own), 2).eval()
    stages = adapter.stages(model.backbone)
    assert len(stages) == adapter.num_stages == len(sites(name)) and all(stages)
    bare = adapter.stages(build_model(TrialParams(backbone=name, **own), 2).backbone)
    se = [i for i, s in enumerate(bare, 1) if all(adapter.native_se_channels(b) for b in s)]
    assert tuple(se) == adapter.native_se_stages
    others = [b for i, s in enumerate(bare, 1) if i not in se for b in s]
    assert not any(adapter.native_se_channels(b) for b in others)
    blocks = [b for s in stages for b in s]
    ends: list[Tensor] = []
    attended: list[Tensor] = []
    for block in blocks:
        end = adapter.branch_end(block)
        end.register_forward_hook(lambda m, a, out: ends.append(out.clone()), prepend=True)
    for attn in (m for m in model.modules() if isinstance(m, AttentionBlock)):
        attn.register_forward_pre_hook(lambda m, a: attended.append(a[0].clone()))
    with torch.no_grad():
        feats = model.forward_features(torch.randn(1, 3, 64, 64))
    assert feats.shape[1] == adapter.feature_width
    assert len(attended) == len(ends) == len(blocks) == count_attention(model)
    for end, attn_in in zip(ends, attended, strict=True):
        torch.testing.assert_close(attn_in, end)
    assert _run_order(model, blocks) == [e for i in range(len(blocks)) for e in (i, "A")]


# --- plugins reach other processes ------------------------------------------------------------

XNET = '''
"""A plugin backbone whose metadata needs no torch."""
from leukmodels.backbones import BackboneAdapter


class XNet(BackboneAdapter):
    num_stages = 2
    feature_width = 16
'''


def _python(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **env},
        timeout=600,
    )


def test_entry_point_plugin_validates_a_space_without_torch(tmp_path: Path) -> None:
    (tmp_path / "xnet_plugin.py").write_text(XNET)
    dist = tmp_path / "xnet_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: xnet-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[leuksearch.backbones]\nxnet = xnet_plugin:XNet\n")
    space = tmp_path / "x.yaml"
    space.write_text(TINY_SPACE.replace("tinynet", "xnet").replace(", stage3]", "]"))
    code = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in ('torch', 'timm'):
                    raise ImportError(name + ' is blocked in this test')
        sys.meta_path.insert(0, Block())
        from search.space import load_space
        space = load_space({str(space)!r})
        print(len(space.factors['placement'].levels))
    """)
    pythonpath = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    r = _python(code, {"PYTHONPATH": pythonpath}, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split()[-1] == "3"  # non-empty subsets of xnet's 2 stages


def test_env_plugin_reaches_a_leuksearch_subprocess(tmp_path: Path) -> None:
    space = tmp_path / "tinynet.yaml"
    space.write_text(TINY_SPACE.replace("{choice: [none, scab]}", "scab"))
    env = {
        "LEUKSEARCH_PLUGINS": "test_backbone_registry",
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    args = f"['profile', {str(space)!r}, '--input-size', '32', '--latency-runs', '1', '--json']"
    r = _python(f"import sys; from search.cli import main; sys.exit(main({args}))", env, ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = json.loads(r.stdout)
    assert len(rows) == 7 and {row["backbone"] for row in rows} == {"tinynet"}
    r = _python(
        f"import sys; from search.cli import main; sys.exit(main(['describe', {str(space)!r}]))",
        {"LEUKSEARCH_PLUGINS": "no_such_plugin_module"},
        ROOT,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "LEUKSEARCH_PLUGINS" in r.stderr and "no_such_plugin_module" in r.stderr
