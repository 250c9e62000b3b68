"""Hostile search spaces: every bad file is refused with exit 2 and one message, fast.

The corpus is a list of (name, file content, expected message fragment, extra arguments);
each case is written to disk and run through ``leuksearch describe`` in-process, a few
through a real subprocess. Names that would become paths (``--study``) are refused by
every command before anything starts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from leukmodels.errors import UserError
from search.cli import main
from search.names import check_name, child_path, name_problem
from search.yamlsrc import MAX_ALIASES, MAX_BYTES, MAX_DEPTH

ROOT = Path(__file__).resolve().parents[1]
OK = "study: t\nspace:\n  lr: 0.01\n"


def laughs(levels: int = 9) -> str:
    """The 'billion laughs' shape: each level is nine aliases of the one before (~1 KB)."""
    lines = ["study: t", 'l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        refs = ",".join([f"*l{i - 1}"] * 9)
        lines.append(f"l{i}: &l{i} [{refs}]")
    lines += ["space:", f"  lr: {{choice: *l{levels - 1}}}"]
    return "\n".join(lines) + "\n"


def space(body: str, head: str = "study: t\n") -> str:
    return head + body


def choices(n_factors: int, n_levels: int) -> str:
    names = ["dropout", "lr", "momentum", "weight_decay", "label_smoothing", "focal_gamma"]
    rows = []
    for name in names[:n_factors]:
        levels = ", ".join(str(round(0.01 * (i + 1), 3)) for i in range(n_levels))
        rows.append(f"  {name}: {{choice: [{levels}]}}")
    return "space:\n" + "\n".join(rows) + "\n"


PROFILED = OK + "profiles:\n  smoke:\n    data.image_size: 64\n"
ABLATION = "space:\n  attention: {choice: [none, se]}\nablation:\n  baseline: {attention: none}\n"
BIG_ABLATION = (
    "space:\n  attention: {choice: [none, se, cbam, pcab, scab, csab]}\n"
    "  backbone: {choice: [resnet18, resnet50, densenet121, mobilenetv1_100]}\n"
    "ablation:\n  baseline: {attention: none}\n  factors: [attention, backbone]\n"
)
# (name, content: str | bytes, expected fragment, extra describe arguments)
CASES: list[tuple[str, Any, str, list[str]]] = [
    # --- YAML itself -------------------------------------------------------------------
    ("alias_bomb", laughs(), "aliases are expanded", []),
    ("too_many_aliases", "study: t\na: &a 1\nb: [" + ", ".join(["*a"] * 150) + "]\n" + OK[9:],
     f"more than {MAX_ALIASES} aliases", []),
    ("recursive_alias", "study: t\nx: &x [1, *x]\nspace:\n  lr: 0.01\n", "recursive alias", []),
    ("undefined_alias", "study: t\nspace:\n  lr: *nope\n", "undefined alias", []),
    ("huge_document", OK + "# " + "x" * (MAX_BYTES + 10) + "\n", "larger than 1024 KiB", []),
    ("deep_nesting", OK + "x: " + "[" * 200 + "]" * 200 + "\n", f"deeper than {MAX_DEPTH}", []),
    ("duplicate_top", "study: t\nstudy: u\nspace:\n  lr: 0.01\n", "at line 1 and line 2", []),
    ("duplicate_nested", "study: t\nspace:\n  epochs: 3\n  epochs: 4\n",
     "key 'epochs' is given twice in the same mapping, at line 3 and line 4", []),
    ("duplicate_flow", OK + "search: {scheduler: {kind: asha, kind: none}}\n", "'kind' is given twice in the same mapping, on line 4 (columns 22 and 34)", []),
    ("python_tag", "study: t\nspace:\n  lr: !!python/object/apply:os.system [echo]\n",
     "'!!python/object/apply:os.system' is not allowed", []),
    ("custom_tag", "study: !secret t\nspace:\n  lr: 0.01\n", "tag '!secret' is not allowed", []),
    ("binary_tag", OK + "description: !!binary aGVsbG8=\n", "'!!binary' is not allowed", []),
    ("set_tag", OK + "description: !!set {a, b}\n", "'!!set' is not allowed", []),
    ("int_key", OK + "1: x\n", "key '1' is not a string (int)", []),
    ("bool_key", "study: t\nspace:\n  yes: 3\n", "key 'yes' is not a string (bool)", []),
    ("null_key", "study: t\nspace:\n  ~: 3\n", "is not a string (NoneType)", []),
    ("complex_key", OK + "? [a, b]\n: 1\n", "a key is a list or mapping", []),
    ("merge_non_mapping", "study: t\nspace:\n  <<: 3\n  lr: 0.01\n", "for merging", []),
    ("list_top", "- study\n- space\n", "a search space is a YAML mapping", []),
    ("scalar_top", "hello\n", "a search space is a YAML mapping", []),
    ("empty_file", "", "the file is empty", []),
    ("only_comments", "# nothing\n\n# here\n", "the file is empty", []),
    ("two_documents", OK + "---\n" + OK, "expected a single document", []),
    ("tabs", "study: t\nspace:\n\tlr: 0.01\n", "YAML does not allow tabs", []),
    ("unclosed_bracket", "study: t\nspace:\n  lr: {choice: [0.1, 0.2}\n", "YAML syntax error", []),
    ("unclosed_quote", 'study: "t\nspace:\n  lr: 0.01\n', "YAML syntax error", []),
    ("binary_garbage", bytes(range(256)) * 4, "not UTF-8", []),
    ("nul_character", "study: t\x00\nspace:\n  lr: 0.01\n", "not a YAML text file", []),
    ("invalid_utf8", b"study: t\xe9\nspace:\n  lr: 0.01\n", "not UTF-8 text (byte 0xe9", []),
    # --- sections and keys -------------------------------------------------------------
    ("unknown_section", OK + "serach: {}\n", "unknown section (did you mean 'search'?)", []),
    ("missing_space", "study: t\n", "missing section 'space'", []),
    ("unknown_search_key", OK + "search: {algo: tpe}\n", "unknown key; valid keys", []),
    ("unknown_parameter", "study: t\nspace:\n  learning_rate: 0.1\n", "unknown parameter", []),
    ("section_not_mapping", OK + "search: [tpe]\n", "expected a mapping", []),
    ("space_is_list", "study: t\nspace: [lr]\n", "space must map parameter names", []),
    # --- types -------------------------------------------------------------------------
    ("num_samples_text", OK + "search: {num_samples: many}\n", "search.num_samples", []),
    ("image_size_text", OK + "data: {image_size: big}\n", "data.image_size", []),
    ("batch_size_text", "study: t\nspace:\n  batch_size: sixteen\n", "sixteen", []),
    ("seed_date", OK + "search: {seed: 2024-01-01}\n", "'2024-01-01'", []),
    ("lr_list", "study: t\nspace:\n  lr: [0.1]\n", "space.lr", []),
    # --- numbers that would exhaust memory --------------------------------------------
    ("image_size_huge", OK + "data: {image_size: 100000}\n", "image_size must be 16..1024 px", []),
    ("image_size_tiny", OK + "data: {image_size: 8}\n", "image_size must be 16..1024 px", []),
    ("batch_size_huge", "study: t\nspace:\n  batch_size: 100000\n", "less than or equal to 4096", []),
    ("batch_memory", "study: t\ndata: {image_size: 512}\nspace:\n  batch_size: {choice: [16, 1024]}\n",
     "batch_size x image_size^2 x 3 x 4 bytes must be <= 1 GiB", []),
    ("batch_memory_range", "study: t\ndata: {image_size: 1024}\nspace:\n  batch_size: {int: [8, 512]}\n",
     "batch_size 512 at image_size 1024 needs 6 GiB", []),
    ("synthetic_n_huge", OK + "data: {n: 100000000}\n", "less than or equal to 1000000", []),
    ("synthetic_memory", OK + "data: {n: 500000, image_size: 224}\n", "n x image_size^2 x 4 bytes", []),
    ("patients_huge", OK + "data: {patients: 1000000000}\n", "data.patients", []),
    ("limit_huge", OK + "data: {limit: 1000000000000}\n", "data.limit", []),
    ("kfold_huge", OK + "data: {split: {kind: kfold, k: 100000}}\n", "data.split.k", []),
    ("num_samples_huge", OK + "search: {num_samples: 1000000000}\n", "less than or equal to 100000", []),
    ("repeats_huge", OK + "search: {repeats: 100000}\n", "search.repeats", []),
    ("epochs_huge", "study: t\nspace:\n  epochs: 10000000\n", "less than or equal to 10000", []),
    ("max_epochs_huge", OK + "search: {scheduler: {kind: asha, max_epochs: 1000000}}\n",
     "search.scheduler.max_epochs", []),
    ("spatial_kernel_huge", "study: t\nspace:\n  spatial_kernel: 100001\n", "less than or equal to 31", []),
    ("noise_levels", "study: t\nspace:\n  offline_noise: [" + ", ".join(["1"] * 50) + "]\n",
     "at most 8 items", []),
    ("cpu_huge", OK + "search: {resources: {cpu: 1.0e9}}\n", "search.resources.cpu", []),
    ("seed_negative", OK + "search: {seed: -1}\n", "search.seed", []),
    ("grid_explosion", "study: t\n" + choices(6, 10), "1,000,000 combinations", []),
    ("trial_explosion", "study: t\ndata: {split: {kind: kfold, k: 100}}\nsearch: {repeats: 100}\n"
     + BIG_ABLATION, "11 points x 100 repeats x 100 folds", []),
    ("subset_too_many_sites", "study: t\nspace:\n  attention: se\n  placement: {subset: ["
     + ", ".join(f"stage{i}" for i in range(1, 31)) + "]}\n", "at most 12 distinct sites", []),
    # --- factors, conditions, subsets --------------------------------------------------
    ("unknown_factor_kind", "study: t\nspace:\n  lr: {gaussian: [0, 1]}\n", "exactly one of", []),
    ("loguniform_zero", "study: t\nspace:\n  lr: {loguniform: [0, 1]}\n", "must be > 0", []),
    ("range_reversed", "study: t\nspace:\n  lr: {uniform: [0.5, 0.1]}\n", "must be below", []),
    ("choice_empty", "study: t\nspace:\n  lr: {choice: []}\n", "non-empty list", []),
    ("choice_repeated", "study: t\nspace:\n  lr: {choice: [0.1, 0.1]}\n", "must be distinct", []),
    ("subset_not_placement", "study: t\nspace:\n  lr: {subset: [a, b]}\n", "subset is for placement", []),
    ("subset_bad_site", "study: t\nspace:\n  placement: {subset: [stage1, head]}\n", "unknown site", []),
    ("subset_missing_site", "study: t\nspace:\n  attention: se\n  placement: {subset: [stage1, stage9]}\n",
     "stage9 not a site of resnet18", []),
    ("condition_syntax", "study: t\nspace:\n  attention: {choice: [none, se]}\n"
     "  dropout: {uniform: [0, 0.5], when: \"attention ===\"}\n", "bad condition", []),
    ("condition_call", "study: t\nspace:\n  attention: {choice: [none, se]}\n"
     "  dropout: {uniform: [0, 0.5], when: \"__import__('os')\"}\n", "'Call' is not allowed", []),
    ("condition_unknown_name", "study: t\nspace:\n  dropout: {uniform: [0, 0.5], when: \"x == 1\"}\n",
     "not a factor declared above", []),
    ("grid_with_ranges", OK.replace("0.01", "{uniform: [0.01, 0.1]}") + "search: {algorithm: grid}\n",
     "grid search needs categorical", []),
    ("metric_unknown", OK + "search: {metric: val_magic}\n", "is not reported per epoch", []),
    ("ablation_unknown_factor", "study: t\n" + ABLATION + "  factors: [backbone]\n",
     "'backbone' is not a factor of the space", []),
    ("ablation_bad_level", "study: t\nspace:\n  attention: {choice: [none, se]}\n"
     "ablation:\n  baseline: {attention: cbam}\n", "is not a level of the factor", []),
    ("holdout_sum", OK + "data: {split: {train: 0.9, val: 0.2, test: 0.1}}\n", "must sum to 1", []),
    # --- profiles ----------------------------------------------------------------------
    ("profile_unknown_key", OK + "profiles:\n  smoke:\n    serach.num_samples: 1\n",
     "is not a section", ["--profile", "smoke"]),
    ("profile_unknown_name", PROFILED, "no profile 'smok' (did you mean 'smoke'?)", ["--profile", "smok"]),
    ("profile_not_mapping", OK + "profiles: [smoke]\n", "profiles map a name", []),
    ("profile_bad_value", PROFILED.replace("64", "100000"), "(profile override)", ["--profile", "smoke"]),
    ("profile_bad_name", OK + "profiles:\n  ../evil: {data.n: 100}\n", "profile name '../evil'", []),
    # --- names that become paths -------------------------------------------------------
    ("study_dotdot", "study: ../../x\nspace:\n  lr: 0.01\n", "contains a path separator", []),
    ("study_dots", "study: ..\nspace:\n  lr: 0.01\n", "contains '..'", []),
    ("study_hidden", "study: .hidden\nspace:\n  lr: 0.01\n", "starts with '.'", []),
    ("study_dash", "study: -rf\nspace:\n  lr: 0.01\n", "starts with '-'", []),
    ("study_empty", "study: ''\nspace:\n  lr: 0.01\n", "it is empty", []),
    ("study_control", 'study: "a\\tb"\nspace:\n  lr: 0.01\n', "control characters", []),
    ("study_long", f"study: {'s' * 150}\nspace:\n  lr: 0.01\n", "150 characters long", []),
    ("study_space", "study: my study\nspace:\n  lr: 0.01\n", "contains ' '", []),
    ("study_number", "study: 5\nspace:\n  lr: 0.01\n", "study name must be a string", []),
    ("study_missing", "space:\n  lr: 0.01\n", "missing section 'study'", []),
    ("protocol_bad_name", OK + "data:\n  protocols:\n    'a/b': {image_size: 64}\n", "protocol name 'a/b'", []),
    ("bundle_bad_name", "study: t\nspace:\n  '../opt': {bundle: {a: {lr: 0.1}, b: {lr: 0.2}}}\n",
     "bundle name '../opt'", []),
]  # fmt: skip
SPECIAL = ["a_directory", "a_missing_file", "profile_flag_path"]


def run_cli(argv: list[str]) -> int:
    """``search.cli.main`` as the shell sees it: argparse's SystemExit becomes the code."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def write_case(tmp_path: Path, name: str, content: Any) -> Path:
    p = tmp_path / f"{name}.yaml"
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8")
    return p


def assert_one_message(code: int, out: str, err: str, fragment: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err and out == ""
    assert fragment in err, err
    assert len([line for line in err.splitlines() if line.startswith("leuksearch")]) == 1, err


def test_the_corpus_is_big_enough_and_valid_spaces_pass(tmp_path: Path, capsys) -> None:
    assert len(CASES) + len(SPECIAL) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)
    assert run_cli(["describe", str(write_case(tmp_path, "ok", OK))]) == 0
    assert (
        run_cli(["describe", str(write_case(tmp_path, "p", PROFILED)), "--profile", "smoke"]) == 0
    )
    # a legitimate anchor and merge still work, and YAML dates stay strings
    merged = OK + "data:\n  protocols:\n    a: &p {image_size: 64}\n    b: {<<: *p, n: 400}\n"
    assert run_cli(["describe", str(write_case(tmp_path, "m", merged))]) == 0
    dated = OK + "description: 2024-01-01\n"
    assert run_cli(["describe", str(write_case(tmp_path, "d", dated)), "--json"]) == 0
    assert '"description": "2024-01-01"' in capsys.readouterr().out


@pytest.mark.parametrize(("name", "content", "fragment", "extra"), CASES, ids=[c[0] for c in CASES])
def test_bad_space_exits_2_with_one_message(
    tmp_path: Path, capsys, name: str, content: Any, fragment: str, extra: list[str]
) -> None:
    path = write_case(tmp_path, name, content)
    code = run_cli(["describe", str(path), *extra])
    out, err = capsys.readouterr()
    assert_one_message(code, out, err, fragment)


@pytest.mark.parametrize("name", SPECIAL)
def test_bad_space_paths_exit_2(tmp_path: Path, capsys, name: str) -> None:
    argv, fragment = {
        "a_directory": (["describe", str(tmp_path)], "is a folder"),
        "a_missing_file": (["describe", str(tmp_path / "nope.yaml")], "not found"),
        "profile_flag_path": (
            ["describe", str(write_case(tmp_path, "p", PROFILED)), "--profile", "../smoke"],
            "profile name '../smoke' is not allowed",
        ),
    }[name]
    out_err = (run_cli(argv), *capsys.readouterr())
    assert_one_message(*out_err, fragment)


def test_alias_bomb_is_refused_in_under_a_second(tmp_path: Path, capsys) -> None:
    text = laughs()
    assert len(text.encode()) < 1100  # the ~1 KB file of the issue
    path = write_case(tmp_path, "bomb", text)
    start = time.perf_counter()
    code = run_cli(["describe", str(path)])
    seconds = time.perf_counter() - start
    out, err = capsys.readouterr()
    assert_one_message(code, out, err, "100,000 values once its aliases are expanded")
    assert seconds < 1.0, f"refusing the alias bomb took {seconds:.2f}s"


def _subprocess(argv: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "search.cli", *argv],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_real_processes_exit_2_without_traceback(tmp_path: Path) -> None:
    """Through the real interpreter (run in parallel): exit code 2, no traceback, nothing
    created for a study named ../../x."""
    cases = {c[0]: c for c in CASES}
    chosen = ["alias_bomb", "duplicate_nested", "binary_garbage", "python_tag", "image_size_huge"]
    jobs = []
    for name in chosen:
        _, content, fragment, extra = cases[name]
        jobs.append(
            (
                _subprocess(["describe", str(write_case(tmp_path, name, content))], tmp_path),
                fragment,
            )
        )
    ok = write_case(tmp_path, "ok", OK)
    storage, db = tmp_path / "runs" / "a" / "b", tmp_path / "s.db"
    run_argv = [
        "run",
        str(ok),
        "--study",
        "../../x",
        "--db",
        f"sqlite:///{db}",
        "--storage-path",
        str(storage),
    ]
    jobs.append((_subprocess(run_argv, tmp_path), "study name '../../x' is not allowed"))
    for proc, fragment in jobs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, err
        assert "Traceback" not in err and fragment in err, err
    assert not db.exists() and not (tmp_path / "runs").exists() and not (tmp_path / "x").exists()


@pytest.mark.parametrize("command", ["run", "resume", "report", "best"])
@pytest.mark.parametrize("study", ["../../x", "a/b", "", ".hidden", "-x", "bad\x07name"])
def test_bad_study_name_stops_every_command_before_it_starts(
    tmp_path: Path, capsys, command: str, study: str
) -> None:
    db = tmp_path / "s.db"
    argv = {
        "run": ["run", str(write_case(tmp_path, "ok", OK)), "--storage-path", str(tmp_path / "r")],
        "resume": ["resume", "--storage-path", str(tmp_path / "r")],
        "report": ["report", "--out", str(tmp_path / "out")],
        "best": ["best"],
    }[command]
    code = run_cli([*argv, f"--study={study}", "--db", f"sqlite:///{db}"])
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err and out == ""
    assert "study name" in err and "is not allowed" in err, err
    assert not db.exists() and not (tmp_path / "r").exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../../x", "path separator"),
        ("a\\b", "path separator"),
        ("..", "'..'"),
        ("a..b", "'..'"),
        (".x", "starts with '.'"),
        ("-x", "starts with '-'"),
        ("", "empty"),
        ("a\nb", "control characters"),
        ("a\x00b", "control characters"),
        ("x" * 101, "101 characters"),
        ("naïve", "'ï'"),
        ("a b", "' '"),
        ("a:b", "':'"),
    ],
)
def test_name_validator(tmp_path: Path, name: str, reason: str) -> None:
    problem = name_problem(name, "study name")
    assert problem is not None and reason in problem
    assert "letters, digits, '.', '_' and '-'" in problem
    with pytest.raises(UserError, match="is not allowed"):
        child_path(tmp_path, name)


def test_valid_names_stay_inside_the_parent(tmp_path: Path) -> None:
    for name in ("quickstart", "attention_placement-2", "v1.0", "A" * 100, "0"):
        assert check_name(name) == name
        assert child_path(tmp_path, name).parent == tmp_path.resolve()


def test_trial_params_and_stored_configs_get_the_same_bounds(tmp_path: Path) -> None:
    """The bounds live on the config models: --params and a stored config meet them too."""
    from search.commands.trial import build_config, parse_params
    from search.space import load_space
    from search.space_limits import checked_config

    sp = load_space(
        write_case(tmp_path, "s", "study: t\ndata: {image_size: 1024}\nspace:\n  lr: 0.01\n")
    )
    with pytest.raises(UserError, match="needs 6 GiB for the input batch alone"):
        build_config(sp, parse_params('{"batch_size": 512}'), {})
    with pytest.raises(UserError, match="epochs"):
        build_config(sp, parse_params('{"epochs": 100000000}'), {})
    stored = build_config(sp, {}, {}).model_dump(mode="json")
    stored["data"]["image_size"] = 100000
    with pytest.raises(UserError, match="trial 7: data.image_size: image_size must be 16..1024 px"):
        checked_config(stored, "trial 7")


def test_command_line_data_overrides_meet_the_bounds_too(tmp_path: Path) -> None:
    """``--data synthetic`` on a space written for a folder: n is bounded again."""
    from search.space import load_space

    text = "study: t\ndata: {dataset: ./cells, n: 500000}\nspace:\n  lr: 0.01\n"
    sp = load_space(write_case(tmp_path, "s", text))
    assert sp.trial_config(sp.baseline()).data.n == 500000  # unused for a folder
    with pytest.raises(UserError, match="synthetic n=500000 at image_size 224 needs"):
        sp.trial_config(sp.baseline(), overrides={"dataset": "synthetic"})
