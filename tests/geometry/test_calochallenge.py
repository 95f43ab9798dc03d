from pathlib import Path

import numpy as np
import pytest

from calogen.geometry import (
    CALOCHALLENGE_DATASETS,
    calochallenge_binning,
    geometry_from_dict,
    read_binning_xml,
)

EXPECTED = {"1-photons": (368, (0, 1, 2, 3, 12), 22),
            "1-pions": (533, (0, 1, 2, 3, 12, 13, 14), 211),
            "2": (6480, tuple(range(45)), 11), "3": (40500, tuple(range(45)), 11)}


@pytest.mark.parametrize("dataset", list(CALOCHALLENGE_DATASETS))
def test_official_binning_voxel_index_round_trip(dataset: str) -> None:
    binning = calochallenge_binning(dataset)
    g = binning.geometry
    n, layer_ids, pid = EXPECTED[dataset]
    assert (g.n_voxels, g.layer_ids, binning.pid) == (n, layer_ids, pid)
    layer, alpha, radius = g.voxel_bins()
    assert np.array_equal(g.voxel_index(layer, alpha, radius), np.arange(n))
    assert geometry_from_dict(g.to_dict()) == g
    # angle outer, radius inner inside every layer
    for i, sl in enumerate(g.layer_slices()):
        lay = g.layers[i]
        assert np.array_equal(radius[sl][:lay.n_r], np.arange(lay.n_r))
        assert np.all(alpha[sl][:lay.n_r] == 0)


def test_dataset1_photon_layers_match_the_xml() -> None:
    g = calochallenge_binning("1-photons").geometry
    l2 = g.layers[2]
    assert l2.id == 2 and l2.n_alpha == 10 and l2.r_edges_mm[-1] == 400.0
    assert [layer.n_voxels for layer in g.layers] == [8, 160, 190, 5, 5]


def test_user_binning_and_clear_errors(tmp_path: Path) -> None:
    good = tmp_path / "mine.xml"
    good.write_text('<Bins><Bin pid="22" name="photon"><Layer id="3" r_edges="0,1,2" '
                    'n_bin_alpha="4"/><Layer id="4" r_edges="0" n_bin_alpha="1"/></Bin></Bins>')
    b = read_binning_xml(good)
    assert b.geometry.n_voxels == 8 and b.geometry.name == "mine" and b.eta_min is None
    bad = tmp_path / "bad.xml"
    bad.write_text('<Bins><Bin pid="22"><Layer id="3" r_edges="0,x" n_bin_alpha="4"/></Bin></Bins>')
    with pytest.raises(ValueError, match=r"bad.xml <Layer id='3'>"):
        read_binning_xml(bad)
    missing = tmp_path / "missing.xml"
    missing.write_text('<Bins><Bin pid="22"><Layer id="3" r_edges="0,1"/></Bin></Bins>')
    with pytest.raises(ValueError, match="n_bin_alpha"):
        read_binning_xml(missing)
    with pytest.raises(ValueError, match="not a readable"):
        read_binning_xml(tmp_path / "nope.xml")
    with pytest.raises(ValueError, match="unknown CaloChallenge dataset"):
        calochallenge_binning("4")


def test_dataset_recognised_from_the_binning_not_the_name() -> None:
    from calogen.geometry import calochallenge_dataset_of, uniform_layers
    edges = [i * 4.65 for i in range(10)]
    assert calochallenge_dataset_of(uniform_layers("mine", 45, edges, 16)) == "2"
    assert calochallenge_dataset_of(uniform_layers("mine", 45, edges, 15)) is None
    assert calochallenge_dataset_of(calochallenge_binning("1-pions").geometry) == "1-pions"
    assert calochallenge_dataset_of(object()) is None
