import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from importance_sampling import experiment
from importance_sampling.datasets import CanevetICML2016
from importance_sampling.model_wrappers import OracleWrapper
from importance_sampling.reweighting import NoReweightingPolicy
from importance_sampling.samplers import PowerSmoothingSampler

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = "canevet_n=i16;batch_size=i16;presample=i64;warmup=i2;history_recompute=i3"


def lines(path):
    with open(path) as f:
        return [line.split() for line in f]


def run_main(output, *options, names=("small_nn", "oracle-loss", "model", "predicted")):
    experiment.main([*names, "canevet-icml2016", str(output), *options])


def test_the_script_trains_and_writes_its_logs(tmp_path):
    command = [
        sys.executable, os.path.join(ROOT, "scripts", "importance_sampling.py"),
        "small_nn", "oracle-loss", "model", "predicted", "canevet-icml2016",
        str(tmp_path), "--train_for", "20", "--validate_every", "10",
        "--hyperparams", TINY,
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run(command, check=True, env=env, cwd=tmp_path, capture_output=True)
    train = lines(tmp_path / "train.txt")
    assert train[0] == ["step", "accuracy", "loss"]
    assert [row[0] for row in train[1:]] == [str(i) for i in range(1, 21)]
    assert all(np.isfinite(float(v)) for row in train[1:] for v in row)
    validation = lines(tmp_path / "val_eval.txt")
    assert [row[0] for row in validation] == ["step", "10", "20"]
    seconds = [float(row[1]) for row in lines(tmp_path / "clock.txt")]
    assert len(seconds) == 20 and seconds == sorted(seconds)
    assert lines(tmp_path / "lr.txt") == [["0", "0.001"]]


def test_options_write_scores_predictions_and_models(tmp_path):
    run_main(
        tmp_path, "--train_for", "6", "--validate_every", "3", "--save_scores",
        "--save_train_scores", "--save_predictions", "--save_model",
        "--snapshot_period", "4", "--hyperparams", TINY + ";lr=f0.01;lr_reductions=I2,4",
    )
    test_size = len(CanevetICML2016(N=16).test_data)
    val_scores = lines(tmp_path / "val_scores.txt")
    assert [row[0] for row in val_scores] == ["3", "6"]
    assert all(len(row) == 1 + test_size for row in val_scores)
    assert [row[0] for row in lines(tmp_path / "train_eval.txt")] == ["step", "3", "6"]
    assert len(lines(tmp_path / "train_scores.txt")) == 2
    predictions = lines(tmp_path / "predictions.txt")
    assert len(predictions) == 6 * 16 and {row[0] for row in predictions} == set("123456")
    lr = [(int(step), float(value)) for step, value in lines(tmp_path / "lr.txt")]
    assert lr == [(0, 0.01), (2, pytest.approx(0.001)), (4, pytest.approx(0.0001))]
    assert os.path.exists(tmp_path / "model.000004.keras")
    model = keras.saving.load_model(tmp_path / "model.keras")
    assert model.output_shape == (None, 2)


@pytest.mark.parametrize(
    "names",
    [
        ("small_nn", "oracle-gnorm", "uniform", "unweighted"),
        ("small_nn", "oracle-acc", "smooth-history", "adjusted"),
        ("small_nn", "oracle-loss", "adaptive-smooth-lstm", "correcting"),
        ("small_nn", "oracle-loss", "power-smooth-pcg", "predicted"),
        ("small_nn", "oracle-loss", "obs", "unweighted"),
    ],
)
def test_every_kind_of_part_trains(tmp_path, names):
    run_main(tmp_path, "--train_for", "4", "--validate_every", "2",
             "--hyperparams", TINY + ";steps_per_epoch=i2;opt=ssgd", names=names)
    assert len(lines(tmp_path / "train.txt")) == 5
    assert len(lines(tmp_path / "val_eval.txt")) == 3


@pytest.mark.parametrize("name", sorted(experiment.SAMPLERS))
def test_every_sampler_name_builds(name):
    hp = {**experiment.parse_hyperparams("smooth=f0.25;presample=i64"), "train_for": 10}
    dataset = CanevetICML2016(N=8)
    wrapper = None
    if name == "rho-loss":  # it trains its irreducible-loss model as it is built
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
        model.compile("sgd", "categorical_crossentropy")
        wrapper = OracleWrapper(model, NoReweightingPolicy())
    sampler = experiment.build_sampler(name, dataset, NoReweightingPolicy(), wrapper, hp)
    if name.startswith("power-smooth-"):
        assert isinstance(sampler, PowerSmoothingSampler) and sampler.power == 0.25


def test_hyperparameters_are_typed_and_defaulted():
    hp = experiment.parse_hyperparams("batch_size=i32;lr=f0.003;lr_reductions=I10,20;lr=i1")
    assert hp["batch_size"] == 32 and hp["lr_reductions"] == [10, 20]
    assert hp["lr"] == 1.0 and isinstance(hp["lr"], float)
    assert hp["k"] == 0.5 and hp["opt"] == "adam"


@pytest.mark.parametrize(
    "text,message",
    [
        ("batch_size=x12", "entry 'batch_size=x12' does not parse"),
        ("lr=fhigh", "entry 'lr=fhigh' does not parse"),
        ("batch_size", "entry 'batch_size' does not parse"),
        ("batch_size=f1.5", "entry 'batch_size=f1.5' has the wrong type"),
        ("lr_reductions=i100", "entry 'lr_reductions=i100' has the wrong type"),
        ("lr_reductions=S1,2", "entry 'lr_reductions=S1,2' has the wrong type"),
        ("opt=F1", "entry 'opt=F1' has the wrong type"),
        ("bach_size=i12", "Unknown hyperparameter 'bach_size'"),
    ],
)
def test_bad_hyperparameters_name_the_entry(text, message):
    with pytest.raises(ValueError, match=message):
        experiment.parse_hyperparams("lr=f0.1;" + text)


def test_the_command_reports_a_bad_hyperparameter(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        run_main(tmp_path, "--hyperparams", "lr=f0.1;k=fhalf")
    assert exit.value.code == 2
    assert "'k=fhalf' does not parse" in capsys.readouterr().err


@pytest.mark.parametrize(
    "names,message",
    [
        (("tiny_nn", "oracle-loss", "model", "predicted"), "MODEL: invalid choice: 'tiny_nn'"),
        (("small_nn", "oracle", "model", "predicted"), "WRAPPER: invalid choice: 'oracle'"),
        (("small_nn", "oracle-loss", "smooth-cache", "predicted"), "SAMPLER: invalid choice"),
        (("small_nn", "oracle-loss", "model", "biased"), "REWEIGHTING: invalid choice"),
    ],
)
def test_unknown_names_are_rejected(tmp_path, capsys, names, message):
    with pytest.raises(SystemExit):
        run_main(tmp_path, names=names)
    assert message in capsys.readouterr().err


def test_builders_reject_unknown_names_with_the_received_value():
    hp = experiment.parse_hyperparams("")
    with pytest.raises(ValueError, match="Received: sampler='smooth-cache'"):
        experiment.build_sampler(
            "smooth-cache", CanevetICML2016(N=8), NoReweightingPolicy(), None, hp
        )


def test_an_unknown_optimizer_ends_with_one_message(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        run_main(tmp_path, "--hyperparams", "opt=ssadam")
    assert exit.value.code == 1
    assert "Received: opt='sadam'" in capsys.readouterr().err


def test_a_missing_dataset_file_ends_with_one_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))

    def offline(fname, origin, **kwargs):
        raise Exception(f"URL fetch failure on {origin}")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(SystemExit) as exit:
        experiment.main(["small_cnn", "oracle-loss", "uniform", "unweighted", "mnist",
                         str(tmp_path / "out")])
    assert exit.value.code == 1
    error = capsys.readouterr().err
    assert os.path.join(str(tmp_path), "keras", "datasets", "mnist.npz") in error
    assert "Traceback" not in error


def test_help_documents_the_files_and_the_hyperparameters(capsys):
    with pytest.raises(SystemExit):
        experiment.main(["--help"])
    text = capsys.readouterr().out
    for name in [*experiment.LOG_FILES, *experiment.HYPERPARAMETERS, "power-smooth-lstm"]:
        assert name in text
