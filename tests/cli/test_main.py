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


def test_train_prior_writes_weights_card_and_loads(tmp_path, capsys):
    from pigment_connect.pigment import load_prior

    code = main(["train-prior", str(tmp_path / "priors" / "tiny"), "--simulated", "600", "--steps", "20", "--quiet"])
    assert code == 0, capsys.readouterr()
    card = (tmp_path / "priors" / "MODEL_CARD.md").read_text()
    assert "600 simulated voxels" in card and "sha256" in card
    prior = load_prior(tmp_path / "priors" / "tiny")
    assert prior.info["training_data"] == "simulated" and prior.info["scans"] == []


def test_train_prior_refuses_a_single_shell_scan(tmp_path, capsys):
    import nibabel as nib
    import numpy as np

    from pigment_connect.datasets import make_subject

    s = make_subject(shape=(24, 24, 6), protocol="single_shell")
    nib.save(nib.Nifti1Image(s.dwi.data.astype(np.float32), s.dwi.affine), tmp_path / "dwi.nii.gz")
    np.savetxt(tmp_path / "dwi.bval", s.dwi.gtab.bvals[None], fmt="%g")
    np.savetxt(tmp_path / "dwi.bvec", s.dwi.gtab.bvecs.T, fmt="%.6f")
    code = main(["train-prior", str(tmp_path / "p"), "--scan", str(tmp_path / "dwi.nii.gz"), "--simulated", "0",
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "two non-zero b-value shells" in err and "dwi" in err and "Traceback" not in err


def test_stats_on_a_synthetic_cohort_finds_the_planted_effect(tmp_path, capsys):
    import json

    import numpy as np
    import pandas as pd

    from pigment_connect.datasets import make_connectome_cohort
    from pigment_connect.graph.export import export_connectome

    cohort = make_connectome_cohort(n_per_group=12, n_nodes=20, effect_size=2.0, seed=2)
    derivs = tmp_path / "derivatives"
    for conn, row in zip(cohort.connectomes, cohort.table.itertuples()):
        export_connectome(conn, derivs / f"sub-{row.subject}" / "dwi", row.subject, formats=(".npz",))
    info = cohort.table.assign(participant_id="sub-" + cohort.table["subject"]).drop(columns="subject")
    info.to_csv(derivs / "participants.tsv", sep="\t", index=False)
    code = main(["stats", str(derivs), str(tmp_path / "stats"), "--seg", "synthetic", "--contrast", "group", "patient",
                 "control", "--covariates", "age", "sex", "--harmonize", "site", "--perm", "500", "--quiet"])
    assert code == 0, capsys.readouterr()
    out = tmp_path / "stats"
    components = pd.read_csv(out / "seg-synthetic_meas-count_desc-patientvscontrol_nbscomponents.tsv", sep="\t")
    assert components.loc[0, "p_fwe"] <= 0.05
    edges = pd.read_csv(out / "seg-synthetic_meas-count_desc-patientvscontrol_nbsedges.tsv", sep="\t")
    hits = edges[edges["p_fwe"] <= 0.05]
    assert len(hits) and np.all(cohort.effect[hits["i"], hits["j"]])
    summary = json.loads((out / "seg-synthetic_meas-count_desc-patientvscontrol_stats.json").read_text())
    assert summary["n_scans"] == 24 and summary["harmonize"] == "site"
    assert main(["stats", str(derivs), str(out), "--seg", "synthetic", "--contrast", "group", "patient"]) == 2
    assert "--contrast" in capsys.readouterr().err


def test_check_gradients_names_the_fix_and_exports_a_table_that_passes(tmp_path, capsys):
    import numpy as np

    assert main(["simulate", str(tmp_path / "bids"), "--n-subjects", "1", "--quiet"]) == 0
    dwi = next((tmp_path / "bids").rglob("*_dwi.nii.gz"))
    bvec = dwi.with_name(dwi.name.replace(".nii.gz", ".bvec"))
    assert main(["check-gradients", str(dwi), "--quiet", "--n-seeds", "1500"]) == 0
    assert "most coherent" in capsys.readouterr().out
    rows = np.loadtxt(bvec)
    np.savetxt(bvec, rows[[1, 0, 2]], fmt="%.8f")  # x and y swapped
    fixed = [str(tmp_path / "fixed.bvec"), str(tmp_path / "fixed.bval")]
    code = main(["check-gradients", str(dwi), "--quiet", "--n-seeds", "1500", "--fail", "--export-fsl", *fixed,
                 "--table", str(tmp_path / "table.tsv")])
    captured = capsys.readouterr()
    assert code == 2 and "looks wrong" in captured.out and str(bvec) in captured.err
    assert (tmp_path / "table.tsv").read_text().count("\n") == 25  # header + 24 candidate tables
    np.testing.assert_allclose(np.abs(np.loadtxt(fixed[0])), np.abs(rows), atol=1e-6)
    assert main(["check-gradients", str(dwi), "--bvec", fixed[0], "--bval", fixed[1], "--quiet", "--fail",
                 "--n-seeds", "1500"]) == 0


def test_run_is_quiet_by_default_and_labels_do_not_swallow_the_folders(tmp_path, capsys, caplog):
    """BIDS-App order with the labels first; without -v no INFO line reaches the terminal (the
    tracker's per-call statistics are DEBUG); the root logger is left alone."""
    import logging

    assert main(["simulate", str(tmp_path / "bids"), "--n-subjects", "1", "--shape", "32", "36", "8", "--quiet"]) == 0
    root_level = logging.getLogger().level
    capsys.readouterr()
    code = main(["run", "--participant-label", "01", str(tmp_path / "bids"), str(tmp_path / "out"), "--parcellation",
                 "derivatives/phantom/{prefix}/dwi/{prefix}_space-dwi_seg-phantom_dseg.nii.gz"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert (tmp_path / "out" / "run_summary.tsv").is_file()
    assert "INFO" not in out + err
    assert logging.getLogger().level == root_level
    terminal = [h for h in logging.getLogger("pigment_connect").handlers if type(h).__name__ == "_TqdmHandler"]
    assert [h.level for h in terminal] == [logging.WARNING]
    series_log = (tmp_path / "out" / "sub-01" / "dwi" / "sub-01_log.txt").read_text()
    assert "INFO" in series_log and "configuration" in series_log  # the series' own log keeps the detail
    assert len((out + err).splitlines()) < 25  # one screen


def test_help_is_wrapped(capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) < 120


def test_dipy_info_lines_are_held_back_without_verbose():
    """DIPY sets its own logger to INFO when first imported (registration prints ~10 lines per
    subject); configure_logging holds it at WARNING even when DIPY is imported after it (a fresh
    interpreter, as the command is), and lets it through with -v."""
    import subprocess
    import sys

    script = """if True:
        import argparse, sys
        from pigment_connect.cli._options import configure_logging
        configure_logging(argparse.Namespace(quiet=False, verbose=int(sys.argv[1]), nthreads=None))
        from dipy.align.imaffine import AffineRegistration
        from dipy.utils.logging import logger
        logger.info("registration step")
    """
    for verbose, shown in ((0, False), (1, True)):
        done = subprocess.run([sys.executable, "-c", script, str(verbose)], capture_output=True, text=True, check=True)
        assert ("registration step" in done.stdout + done.stderr) is shown, (verbose, done.stdout, done.stderr)


def test_our_warnings_print_as_one_line_and_not_with_quiet():
    import subprocess
    import sys

    script = """if True:
        import argparse, sys, warnings
        from pigment_connect.cli._options import configure_logging
        from pigment_connect.errors import PigmentWarning
        configure_logging(argparse.Namespace(quiet=sys.argv[1] == "q", verbose=0, nthreads=None))
        warnings.warn("11 of 200 labels vanished", PigmentWarning)
    """
    loud = subprocess.run([sys.executable, "-c", script, "-"], capture_output=True, text=True, check=True)
    assert loud.stderr.strip() == "WARNING: 11 of 200 labels vanished"
    quiet = subprocess.run([sys.executable, "-c", script, "q"], capture_output=True, text=True, check=True)
    assert quiet.stderr == ""


def test_run_without_any_parcellation_stops_before_the_first_subject(tmp_path, capsys):
    assert main(["simulate", str(tmp_path / "bids"), "--n-subjects", "1", "--shape", "32", "36", "8", "--quiet"]) == 0
    # with no option the default atlas is used; a configuration that turns every atlas off and
    # gives no parcellation cannot build a connectome, and says so before anything runs
    config = tmp_path / "no_atlas.toml"
    config.write_text("atlases = []\n")
    assert main(["run", str(tmp_path / "bids"), str(tmp_path / "out"), "--config", str(config), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no parcellation configured" in err and "--atlas schaefer200" in err
    assert not (tmp_path / "out" / "sub-01").exists()  # nothing ran
