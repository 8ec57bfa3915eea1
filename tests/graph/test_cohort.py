"""Reading a cohort's derivatives and tidy per-subject metrics."""

import numpy as np
import pytest

from pigment_connect.datasets import make_connectome_cohort
from pigment_connect.errors import InputError
from pigment_connect.graph import cohort, export


@pytest.fixture()
def derivatives(tmp_path):
    c = make_connectome_cohort(n_per_group=3, n_nodes=12, seed=0)
    for conn, row in zip(c.connectomes, c.table.itertuples()):
        export.export_connectome(conn, tmp_path / f"sub-{row.subject}" / "dwi", row.subject, formats=(".npz", ".tsv"))
    info = c.table.assign(participant_id="sub-" + c.table["subject"]).drop(columns="subject")
    info.to_csv(tmp_path / "participants.tsv", sep="\t", index=False)
    return tmp_path, c


def test_read_cohort_joins_participants(derivatives):
    root, c = derivatives
    conns, table = cohort.read_cohort(root, seg="synthetic", meas="count")
    assert table["subject"].tolist() == c.table["subject"].tolist()
    assert table["age"].dtype.kind == "f" and table["group"].tolist() == c.table["group"].tolist()
    np.testing.assert_allclose(np.stack([x.weights for x in conns]), c.stack)
    conns_tsv, _ = cohort.read_cohort(root, seg="synthetic", meas="count", extension=".tsv")
    mean_fa = conns[0].__class__(c.stack[0], conns[0].nodes, "mean_fa", "synthetic")
    export.export_connectome(mean_fa, root / "sub-001" / "dwi", "001", formats=(".npz",))
    only, _ = cohort.read_cohort(root, seg="synthetic", meas="mean_fa")  # the pipeline's meas-meanfa files
    assert len(only) == 1 and only[0].weighting == "mean_fa"
    np.testing.assert_allclose(conns_tsv[0].weights, c.stack[0], rtol=1e-9)
    nodes, graphs = cohort.cohort_metrics(conns, table)
    assert len(nodes) == 6 * 12 and len(graphs) == 6
    assert {"subject", "group", "node", "strength"} <= set(nodes.columns)


def test_read_cohort_errors(derivatives):
    root, _ = derivatives
    with pytest.raises(InputError, match="no connectome files"):
        cohort.read_cohort(root, seg="schaefer200")
    (root / "participants.tsv").write_text("participant_id\tgroup\nsub-001\tcontrol\n")
    with pytest.raises(InputError, match="lacks subjects"):
        cohort.read_cohort(root, seg="synthetic")


def test_subjects_with_several_series_are_refused_or_reduced_by_an_explicit_rule(tmp_path):
    """sub-001 has dir-AP and dir-PA series: a group model must not count it twice."""
    c = make_connectome_cohort(n_per_group=2, n_nodes=8, seed=1)
    for k, (conn, row) in enumerate(zip(c.connectomes, c.table.itertuples())):
        series = ["dir-AP", "dir-PA"] if k == 0 else ["dir-AP"]
        for n, entity in enumerate(series):
            scaled = conn.__class__(conn.weights * (1 + n), conn.nodes, "count", "synthetic")
            scaled.save(tmp_path / f"sub-{row.subject}" / "dwi" /
                        f"sub-{row.subject}_{entity}_seg-synthetic_meas-count_connectome.npz")
    info = c.table.assign(participant_id="sub-" + c.table["subject"]).drop(columns="subject")
    info.to_csv(tmp_path / "participants.tsv", sep="\t", index=False)
    first = c.table["subject"].iloc[0]
    with pytest.raises(InputError, match=f"sub-{first}_dir-AP \\+ sub-{first}_dir-PA"):
        cohort.read_cohort(tmp_path, seg="synthetic")
    conns, table = cohort.read_cohort(tmp_path, seg="synthetic", multi_series="first")
    assert len(conns) == len(c.connectomes) and table["subject"].is_unique
    assert table["series"].iloc[0] == f"sub-{first}_dir-AP"
    np.testing.assert_allclose(conns[0].weights, c.stack[0])
    conns, table = cohort.read_cohort(tmp_path, seg="synthetic", multi_series="mean")
    np.testing.assert_allclose(conns[0].weights, 1.5 * c.stack[0])
    assert table["series"].iloc[0] == f"sub-{first}_dir-AP+sub-{first}_dir-PA"
    assert conns[0].provenance["averaged_series"] == [f"sub-{first}_dir-AP", f"sub-{first}_dir-PA"]
    with pytest.raises(InputError, match="multi_series"):
        cohort.read_cohort(tmp_path, seg="synthetic", multi_series="all")


def test_participants_found_through_the_source_dataset(tmp_path):
    """A run's output folder anywhere: its dataset_description.json names the BIDS dataset it read."""
    import json

    from pigment_connect.graph.cohort import find_participants

    bids, out = tmp_path / "study", tmp_path / "elsewhere" / "out"
    bids.mkdir()
    out.mkdir(parents=True)
    (bids / "participants.tsv").write_text("participant_id\tage\nsub-01\t40\n")
    (out / "dataset_description.json").write_text(json.dumps({"SourceDatasets": [{"URL": f"file://{bids}"}]}))
    info = find_participants(out)
    assert info is not None and info.loc["01", "age"] == "40"
    assert find_participants(tmp_path / "elsewhere") is None
