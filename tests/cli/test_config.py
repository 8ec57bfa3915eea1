"""One definition per pipeline setting: every setting is a flag of ``run`` and a key of the
``--config`` file, ``config --show`` prints what a run would use (and reads back), bad files stop
before anything runs."""

from dataclasses import fields

import pytest

from pigment_connect.cli.main import build_parser, main
from pigment_connect.pipeline.config import PipelineConfig, load_config


def _show(capsys, *argv):
    assert main(["config", "--show", *argv]) == 0
    return capsys.readouterr().out


def test_show_prints_every_setting_and_reads_back(tmp_path, capsys):
    text = _show(capsys)
    for f in fields(PipelineConfig):
        assert f"{f.name} =" in text
    assert 'atlases = ["schaefer200"]' in text  # the default atlas: run works with no option
    path = tmp_path / "pipeline.toml"
    path.write_text(text)
    assert PipelineConfig.from_dict(load_config(path)) == PipelineConfig()


def test_flags_override_the_file_which_overrides_the_defaults(tmp_path, capsys):
    path = tmp_path / "pipeline.toml"
    path.write_text('model = "pigment"\nstep_size = 0.8\nweightings = ["count"]\nseed = 3\n')
    text = _show(capsys, "--config", str(path), "--step-size", "1.0", "--weighting", "count,mean_fa",
                 "--weighting", "invlength", "--parcellation", "x/{prefix}_dseg.nii.gz")
    shown = tmp_path / "shown.toml"
    shown.write_text(text)
    config = PipelineConfig.from_dict(load_config(shown))
    assert config.model == "pigment" and config.step_size == 1.0 and config.seed == 3
    assert config.weightings == ("count", "mean_fa", "invlength")
    assert config.atlases == ()  # a parcellation given: no default atlas


def test_every_setting_is_a_run_flag():
    """Generated from the dataclass: no hand-copied list can miss a setting or a choice."""
    parser = build_parser()
    run = parser._subparsers._group_actions[0].choices["run"]
    dests = {a.dest: a for a in run._actions}
    for f in fields(PipelineConfig):
        if f.metadata["cli"]:
            assert f.name in dests, f.name
            if f.metadata["choices"]:
                assert tuple(dests[f.name].choices) == f.metadata["choices"]


@pytest.mark.parametrize("content, message", [
    ('stepsize = 1.0\n', "unknown pipeline settings ['stepsize']"),
    ('step_size = -1.0\n', "step_size must lie in"),
    ('model = "csd"\n', "model must be one of"),
    ('seeds_per_voxel = "two"\n', "seeds_per_voxel must be an integer"),
    ('step_size = \n', "not valid TOML"),
])
def test_bad_files_stop_with_the_file_named_before_any_series(tmp_path, capsys, content, message):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    out = tmp_path / "out"
    code = main(["run", str(tmp_path), str(out), "--config", str(path), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and str(path) in err
    assert not out.exists()
