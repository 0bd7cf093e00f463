"""Each compatibility fix of recbole_llmaug.compat, and each pinned-version problem, holds."""

import sys

import numpy as np
import pytest
import torch

import recbole_llmaug  # noqa: F401  (applies the fixes)
from recbole_llmaug.config import make_config


def test_numpy_is_below_2_and_recbole_aliases_exist_before_any_config():
    assert int(np.__version__.split(".")[0]) < 2
    assert np.float is np.float_ and np.int is np.int_ and np.bool is np.bool_


def test_anomaly_detection_stays_off_after_importing_recbole_sequential_models():
    import recbole.model.sequential_recommender  # noqa: F401

    assert not torch.is_anomaly_enabled()


def test_recbole_trainer_loads_its_own_checkpoint_under_torch_weights_only_default(tmp_path):
    import recbole.trainer.trainer as rb_trainer
    from recbole.config import Config

    path = tmp_path / "checkpoint.pth"
    torch.save({"config": Config.__new__(Config)}, path)
    with pytest.raises(Exception):
        torch.load(path)  # torch's own default (weights_only=True) refuses RecBole's pickled Config
    assert rb_trainer.torch.load(path)["config"].__class__ is Config


def test_pandas_below_3_so_recbole_fills_missing_values(tiny_dataset, fast_settings):
    import pandas as pd
    from recbole.data import create_dataset

    assert int(pd.__version__.split(".")[0]) < 3
    settings = dict(fast_settings, data_path=str(tiny_dataset), load_col={"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "price"]})
    config = make_config("SASRec", "tiny", config_dict=settings)
    dataset = create_dataset(config)
    price = np.asarray(dataset.item_feat["price"], dtype=float)
    assert len(price) > 20 and not np.isnan(price).any(), "missing prices must be filled, not left NaN"


def test_ray_tune_imports_with_pinned_setuptools_and_numpy():
    import ray
    from ray import tune  # noqa: F401  (needs pkg_resources and np.bool8)

    assert ray.__version__ == "2.6.3"


def test_scipy_pin_keeps_lightgcn_adjacency_working(tiny_dataset, fast_settings):
    import scipy
    from recbole.data import create_dataset, data_preparation

    from recbole_llmaug.utils import get_model

    assert tuple(int(x) for x in scipy.__version__.split(".")[:2]) < (1, 13)
    config = make_config("LightGCN", "tiny", config_dict=dict(fast_settings, data_path=str(tiny_dataset)))
    train, _, _ = data_preparation(config, create_dataset(config))
    model = get_model("LightGCN")(config, train._dataset)
    assert model.norm_adj_matrix.shape[0] == model.n_users + model.n_items


def test_train_epoch_trains_one_epoch_without_evaluating(tiny_dataset, fast_settings):
    from recbole.data import create_dataset, data_preparation

    from recbole_llmaug.compat import train_epoch
    from recbole_llmaug.utils import get_model, get_trainer

    config = make_config("SASRec", "tiny", config_dict=dict(fast_settings, data_path=str(tiny_dataset)))
    train, _, _ = data_preparation(config, create_dataset(config))
    model = get_model("SASRec")(config, train.dataset)
    trainer = get_trainer(config["MODEL_TYPE"], "SASRec")(config, model)
    before = model.item_embedding.weight.detach().clone()
    loss = train_epoch(trainer, train, 0)
    assert np.isfinite(float(loss)) and not torch.equal(before, model.item_embedding.weight)
    assert trainer.best_valid_result is None  # nothing was evaluated


def test_command_line_arguments_do_not_leak_into_recbole_config(tiny_dataset, fast_settings, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["pytest", "--epochs=99", "--learning_rate=0.5"])
    config = make_config("SASRec", "tiny", config_dict=dict(fast_settings, data_path=str(tiny_dataset)))
    assert config["epochs"] == 1 and config["learning_rate"] == 0.001
    assert sys.argv == ["pytest", "--epochs=99", "--learning_rate=0.5"]


def test_bert4rec_mask_of_the_last_position_equals_recboles_loop():
    import torch
    from recbole.model.sequential_recommender.bert4rec import BERT4Rec

    model = BERT4Rec.__new__(BERT4Rec)
    model.mask_token = 99
    item_seq = torch.randint(1, 50, (64, 12))
    item_seq_len = torch.randint(1, 13, (64,))
    for row, length in enumerate(item_seq_len):
        item_seq[row, length:] = 0
    ours = model.reconstruct_test_data(item_seq.clone(), item_seq_len)
    theirs = BERT4Rec.recbole_reconstruct_test_data(model, item_seq.clone(), item_seq_len)
    assert torch.equal(ours, theirs) and (ours == 99).sum() == 64


def test_property_files_read_scientific_numbers_as_floats(tmp_path):
    """RecBole's yaml loader (compat.recbole_yaml_loader): plain PyYAML would read 1e-3 as a string."""
    from recbole_llmaug.defaults import read_yaml

    path = tmp_path / "p.yaml"
    path.write_text("learning_rate: 1e-3\nlayer_norm_eps: 1.0e-12\n")
    assert read_yaml(path) == {"learning_rate": 0.001, "layer_norm_eps": 1e-12}


def test_importing_the_package_prints_no_ray_pkg_resources_warning():
    """Ray 2.6 warns on import that pkg_resources is deprecated; compat silences that one warning."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-W", "default", "-c", "import recbole_llmaug.quick_start"],
                            capture_output=True, text=True, check=True)
    assert "pkg_resources" not in result.stderr
