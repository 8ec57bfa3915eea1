from pigment_connect.cli.main import main


def test_help_and_version(capsys):
    assert main(["--version"]) == 0
    assert "pigment-connect" in capsys.readouterr().out
    assert main([]) == 2


def test_bad_input_exits_2_with_the_file_named(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nowhere"), str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "Fix:" in err and "Traceback" not in err


def test_simulate_then_run_a_subject(tmp_path, capsys):
    assert main(["simulate", str(tmp_path / "bids"), "--n-subjects", "1", "--shape", "32", "36", "8", "--quiet"]) == 0
    code = main(["run", str(tmp_path / "bids"), str(tmp_path / "out"), "--quiet", "--parcellation",
                 "derivatives/phantom/{prefix}/dwi/{prefix}_space-dwi_seg-phantom_dseg.nii.gz"])
    assert code == 0, capsys.readouterr()
    assert (tmp_path / "out" / "group_graphmetrics.tsv").is_file()
