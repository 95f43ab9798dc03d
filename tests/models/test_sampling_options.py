"""Sampling options declared by the families, parsed from ``--sample key=value``."""

from __future__ import annotations

from pathlib import Path

import pytest

from calogen.cli.train_cmd import _on_top_of, sampling_options
from calogen.models.registry import family_class


def test_options_are_parsed_with_their_types() -> None:
    ddpm = family_class("ddpm")
    assert ddpm.parse_sampling(["steps=8", "sampler=ddim", "eta=0.5"]) == {
        "steps": 8, "sampler": "ddim", "eta": 0.5}
    assert family_class("vq-vae").parse_sampling(["top_k=5"]) == {"top_k": 5}


@pytest.mark.parametrize(("pairs", "match"), [
    (["temperature=0.5"], r"no sampling option 'temperature'; accepted: steps \(int\), "
                          r"sampler \(str: heun/euler/stochastic\), s_churn \(float\)"),
    (["steps=eight"], r"'steps' takes int, got 'eight'; accepted: steps"),
    (["steps=1.5"], r"'steps' takes int"),
    (["s_churn=nan"], r"'s_churn' takes float"),
    (["steps"], r"expected key=value"),
])
def test_bad_options_list_the_accepted_ones(pairs: list[str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        family_class("edm").parse_sampling(pairs)


def test_alias_flags_merge_and_conflicts_are_refused() -> None:
    edm = family_class("edm")
    assert sampling_options(edm, ["steps=8"], {"sampler": "euler"}) == {
        "steps": 8, "sampler": "euler"}
    assert sampling_options(edm, ["steps=8"], {"steps": 8}) == {"steps": 8}
    with pytest.raises(ValueError, match="given twice"):
        sampling_options(edm, ["steps=8"], {"steps": 4})


def test_built_on_is_declared_on_the_class() -> None:
    assert family_class("consistency").built_on.families == ("edm",)
    assert family_class("caloflow-student").built_on.option == "teacher"
    assert family_class("latent-flow-matching").built_on.families == ("vae", "ae-noise")
    assert family_class("vae").built_on is None


def test_base_options_go_to_families_built_on_a_model(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--base is for --model .*consistency"):
        _on_top_of("vae", {}, base=tmp_path)
    with pytest.raises(ValueError, match="--teacher is for --model caloclouds2-cm / "
                                         "caloflow-student / consistency / icaloflow-student, "
                                         "not 'latent-flow-matching'"):
        _on_top_of("latent-flow-matching", {}, teacher=tmp_path)
    with pytest.raises(ValueError, match="once"):
        _on_top_of("consistency", {}, base=tmp_path, teacher=tmp_path)
    assert _on_top_of("vae", {"a": 1}, base=None) == {"a": 1}
