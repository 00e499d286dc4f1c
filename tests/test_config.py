import pytest

from seqlab.config import build_config, load_config, save_config
from seqlab.errors import SeqlabError


def test_presets_fill_explicit_sizes_and_overrides_win():
    cfg = build_config({}, ["model.arch=cnn", "model.preset=base", "model.num_filters=7"])
    assert cfg.model.embed_dim == 300 and cfg.model.num_filters == 7 and cfg.model.filter_sizes == [3, 4, 5]
    assert build_config({}, ["model.arch=transformer"]).model.dropout == 0.1


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (["train.epochz=3"], "train.epochz: unknown key"),
        (["model.hidden_dim=abc"], "model.hidden_dim"),
        (["model.arch=foo"], "unknown architecture 'foo'"),
        (["model.arch=cnn", "model.hidden_dim=3"], "model.hidden_dim: unknown key"),
        (["train.lr=-1"], "train.lr"),
        (["epochs"], "section.key=value"),
        (["model.arch=transformer", "model.d_model=10", "model.num_heads=3"], "divisible"),
    ],
)
def test_config_errors_name_the_key(overrides, fragment):
    with pytest.raises(SeqlabError) as err:
        build_config({}, overrides)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_saved_config_round_trips(tmp_path):
    cfg = build_config({}, ["model.arch=bilstm", "train.epochs=2", "data.train=x.csv"])
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml", ["train.seed=5"])
    assert again.model == cfg.model and again.train.seed == 5 and again.data.train == "x.csv"


def test_bad_yaml_is_one_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: [unclosed\n")
    with pytest.raises(SeqlabError, match="not valid YAML"):
        load_config(path)
