"""The command line as a user runs it: train, resume, evaluate, and the errors people make."""

import subprocess
import sys
from pathlib import Path

import pytest

from robustjax.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
ERM = str(ROOT / "configs" / "mnist5k" / "erm.py")
SMALL = ["--set", "model=mlp", "--set", "model_kwargs={}", "--set", "epochs=1"]


def test_train_prints_accuracy_and_resume_skips_a_finished_run(tmp_path, capsys):
    assert main(["train", "--config", ERM, "--workdir", str(tmp_path), *SMALL]) == 0
    out = capsys.readouterr().out
    assert "epoch   1" in out and "test accuracy" in out
    assert (tmp_path / "metrics.jsonl").exists() and (tmp_path / "config.json").exists()
    # running the README command again with --resume does not train again
    assert main(["train", "--config", ERM, "--workdir", str(tmp_path), *SMALL, "--resume"]) == 0
    assert "epoch   1" not in capsys.readouterr().out


def test_misspelled_set_key_is_an_error_naming_it(tmp_path, capsys):
    code = main(["train", "--config", ERM, "--workdir", str(tmp_path), "--set", "epocs=2"])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown config key 'epocs'" in err and "epochs" in err


def test_missing_config_file(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "nope.py"), "--workdir", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_evaluate_without_a_run_is_an_error(tmp_path, capsys):
    assert main(["evaluate", "--workdir", str(tmp_path)]) == 2
    assert "config.json" in capsys.readouterr().err


def test_module_entry_point_help():
    """``python -m robustjax`` (robustjax.__main__) is the CLI."""
    proc = subprocess.run([sys.executable, "-m", "robustjax", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert "train" in proc.stdout and "evaluate" in proc.stdout


def test_parser_requires_a_command():
    with pytest.raises(SystemExit):
        build_parser().parse_args([])


@pytest.mark.parametrize("flag", ["--processes", "--cpu-devices"])
def test_process_counts_must_be_positive(tmp_path, capsys, flag):
    for command in (["train", "--config", ERM, "--workdir", str(tmp_path)],
                    ["evaluate", "--workdir", str(tmp_path)]):
        assert main([*command, flag, "0"]) == 2
        assert f"{flag} must be a positive integer; got 0" in capsys.readouterr().err


def test_train_prints_the_converted_strengths(tmp_path, capsys):
    """``robustjax train`` prints the paper's strengths and their [0, 1]-pixel values before
    training (here stopped at once by an invalid epoch count)."""
    gn = str(Path(ERM).parent / "gn.py")
    assert main(["train", "--config", gn, "--workdir", str(tmp_path), "--set", "epochs=0"]) == 2
    out = capsys.readouterr().out
    assert "'per_image' space" in out and "method_kwargs.lam" in out
    assert "5 " in out and "0.475" in out  # λ = 5 (per image) -> 5·0.3083² in pixels


def test_experiment_dispatches_to_the_paper_script(tmp_path, capsys):
    # the script's own validation answers: the options reached experiments/soar2020.py
    assert main(["experiment", "soar2020", "--workdir", str(tmp_path), "--quick", "--seeds", "0"]) == 2
    assert "--seeds must be a positive integer; got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["experiment", "nosuchpaper"])
