"""Module 07 Training, graded through the exported package `tinytorch.core.training`."""

import io
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinytorch.core.autograd  # noqa: F401  (turns on backward())
from tinytorch.core.activations import ReLU, relu
from tinytorch.core.layers import Dropout, Linear, Module, Sequential
from tinytorch.core.losses import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from tinytorch.core.optimizers import SGD, Adam, LambdaLR, StepLR
from tinytorch.core.tensor import Tensor, manual_seed
from tests.modules.fixtures_data import npy_bytes, npz_file, npz_members, safetensors_file, safetensors_parts, text_npy
from tinytorch.core.training import (
    CheckpointError,
    EarlyStopping,
    Trainer,
    accuracy,
    confusion_matrix,
    evaluate_model,
    flatten_state,
    load_checkpoint,
    load_state,
    plot_training_history,
    precision_recall_f1,
    save_checkpoint,
    save_state,
    unflatten_state,
)

FORMATS = ["safetensors", "npz"]


# ---- helpers ----------------------------------------------------------------------------------------
class MLP(Module):
    """Linear layers of the given sizes with ReLU between them."""

    def __init__(self, *sizes):
        super().__init__()
        self.layers = [Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]

    def forward(self, x):
        for position, layer in enumerate(self.layers):
            x = layer(x)
            if position < len(self.layers) - 1:
                x = relu(x)
        return x


def blobs(n_per_class=40, seed=0, classes=3):
    rng = np.random.default_rng(seed)
    centres = 2.5 * np.stack([np.cos(2 * np.pi * np.arange(classes) / classes),
                              np.sin(2 * np.pi * np.arange(classes) / classes)], axis=1)
    inputs = np.concatenate([rng.normal(c, 0.6, size=(n_per_class, 2)) for c in centres]).astype(np.float32)
    labels = np.repeat(np.arange(classes), n_per_class)
    order = rng.permutation(len(labels))
    return inputs[order], labels[order]


def loader_of(inputs, labels, batch_size):
    return [(Tensor(inputs[i : i + batch_size]), Tensor(labels[i : i + batch_size]))
            for i in range(0, len(labels), batch_size)]


def classifier(seed=0, sizes=(2, 16, 3)):
    manual_seed(seed)
    return MLP(*sizes)


def weights_of(model):
    return {name: value.copy() for name, value in model.state_dict().items()}


def trained_run(seed=1):
    """A classifier with an Adam (moments filled by one epoch) and a StepLR."""
    inputs, labels = blobs()
    model = classifier(seed=seed)
    optimizer = Adam(model.parameters(), lr=0.01)
    scheduler = StepLR(optimizer, step_size=1, gamma=0.5)
    Trainer(model, optimizer, CrossEntropyLoss(), scheduler=scheduler, verbose=False).fit(
        loader_of(inputs, labels, 40), epochs=1)
    return model, optimizer, scheduler


def snapshot(model, optimizer, scheduler):
    """Everything a load could change, as plain values to compare."""
    state = {param_index: {key: np.copy(value) for key, value in entry.items()}
             for param_index, entry in optimizer.state_dict()["state"].items()}
    groups = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    return weights_of(model), state, groups, scheduler.state_dict()


def assert_same_snapshot(before, after):
    for name, array in before[0].items():
        np.testing.assert_array_equal(after[0][name], array, err_msg=f"model {name} changed")
    assert before[1].keys() == after[1].keys(), "optimizer state changed"
    for position, entry in before[1].items():
        for key, value in entry.items():
            np.testing.assert_array_equal(after[1][position][key], value, err_msg=f"optimizer {position}/{key} changed")
    assert before[2] == after[2], "optimizer options changed"
    assert before[3] == after[3], "scheduler changed"


# ---- metrics -------------------------------------------------------------------------------------
def test_metrics_match_a_hand_count():
    truth = [0, 0, 1, 1, 2, 2, 2, 1]
    guess = [0, 1, 1, 1, 2, 0, 2, 2]
    # by hand: class 0: TP 1, predicted 2, actual 2; class 1: TP 2, predicted 3, actual 3;
    # class 2: TP 2, predicted 3, actual 3
    assert accuracy(guess, truth) == 5 / 8
    assert confusion_matrix(guess, truth).tolist() == [[1, 1, 0], [0, 2, 1], [1, 0, 2]]
    per_class = precision_recall_f1(guess, truth, average=None)
    np.testing.assert_allclose(per_class["precision"], [1 / 2, 2 / 3, 2 / 3])
    np.testing.assert_allclose(per_class["recall"], [1 / 2, 2 / 3, 2 / 3])
    np.testing.assert_allclose(per_class["f1"], [1 / 2, 2 / 3, 2 / 3])
    assert per_class["support"].tolist() == [2, 3, 3]
    macro = precision_recall_f1(guess, truth)
    assert macro["precision"] == pytest.approx((1 / 2 + 2 / 3 + 2 / 3) / 3)
    assert macro["support"] == 8


def test_metrics_accept_tensors_and_scores():
    truth = Tensor(np.array([2, 0, 1]))
    scores = Tensor(np.array([[0.1, 0.2, 3.0], [1.0, 0.0, 0.5], [0.0, 0.1, 0.2]], dtype=np.float32))
    assert accuracy(scores, truth) == pytest.approx(2 / 3)
    assert confusion_matrix(scores, truth).tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 1]]
    assert accuracy(np.array([1.0, 0.0]), np.array([1, 1])) == 0.5, "integer-valued floats are labels"


def test_a_class_never_predicted_has_precision_zero_not_nan():
    result = precision_recall_f1([0, 0, 0, 0], [0, 0, 1, 1], average=None)
    assert result["precision"].tolist() == [0.5, 0.0]
    assert result["recall"].tolist() == [1.0, 0.0]
    assert result["f1"][1] == 0.0 and not np.isnan(result["f1"]).any()


def test_always_predicting_the_majority_class_is_exposed_by_macro_recall():
    truth = np.array([0] * 99 + [1])
    guess = np.zeros(100, dtype=np.int64)
    assert accuracy(guess, truth) == 0.99
    assert precision_recall_f1(guess, truth)["recall"] == 0.5


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_metrics_agree_with_counting_by_loops(data):
    classes = data.draw(st.integers(1, 5))
    size = data.draw(st.integers(1, 40))
    truth = np.array(data.draw(st.lists(st.integers(0, classes - 1), min_size=size, max_size=size)))
    guess = np.array(data.draw(st.lists(st.integers(0, classes - 1), min_size=size, max_size=size)))
    matrix = confusion_matrix(guess, truth, num_classes=classes)
    expected = np.zeros((classes, classes), dtype=np.int64)
    for t, g in zip(truth, guess):
        expected[t, g] += 1
    assert np.array_equal(matrix, expected)
    assert accuracy(guess, truth) == pytest.approx(np.trace(expected) / size)
    per_class = precision_recall_f1(guess, truth, num_classes=classes, average=None)
    for k in range(classes):
        tp = sum(1 for t, g in zip(truth, guess) if t == k and g == k)
        predicted = sum(1 for g in guess if g == k)
        actual = sum(1 for t in truth if t == k)
        assert per_class["precision"][k] == pytest.approx(tp / predicted if predicted else 0.0)
        assert per_class["recall"][k] == pytest.approx(tp / actual if actual else 0.0)


def test_metric_errors_explain_what_to_pass():
    with pytest.raises(ValueError, match="threshold"):
        accuracy(np.array([0.2, 0.7]), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"3 predictions but 2 targets"):
        accuracy([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match=r"label 3 is outside the classes 0\.\.2"):
        confusion_matrix([0, 3], [0, 1], num_classes=3)
    with pytest.raises(ValueError, match="label -1"):
        confusion_matrix([0, -1], [0, 1])
    with pytest.raises(ValueError, match="no examples"):
        accuracy([], [])
    with pytest.raises(ValueError, match="average"):
        precision_recall_f1([0], [0], average="micro")


# ---- state without pickle --------------------------------------------------------------------------
def test_flatten_and_unflatten_are_inverse():
    state = {
        "model": {"layers.0.weight": np.arange(6, dtype=np.float32).reshape(2, 3)},
        "optimizer": {"state": {0: {"step": 7, "exp_avg": np.ones(3, np.float32)}},
                      "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "params": [0]}]},
        "tensor": Tensor(np.array([1.5, 2.5]), dtype=np.float64),
        "history": {"val_loss": [None, 0.5, float("inf")]},
        "scalar": np.float32(0.25),
        "odd keys": {"__array__": 1},
    }
    arrays, skeleton = flatten_state(state)
    assert all(isinstance(a, np.ndarray) for a in arrays.values()) and len(arrays) == 3
    back = unflatten_state(arrays, json.loads(json.dumps(skeleton)))
    np.testing.assert_array_equal(back["model"]["layers.0.weight"], state["model"]["layers.0.weight"])
    assert list(back["optimizer"]["state"]) == [0], "integer keys survive JSON"
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert isinstance(back["tensor"], Tensor) and back["tensor"].dtype == np.float64
    assert back["history"]["val_loss"][0] is None and back["history"]["val_loss"][2] == math.inf
    assert back["scalar"] == 0.25 and back["odd keys"] == {"__array__": 1}


def test_flatten_refuses_objects_and_names_where():
    with pytest.raises(TypeError, match=r"'optimizer/hook'.*never pickle"):
        flatten_state({"optimizer": {"hook": lambda: None}})
    with pytest.raises(ValueError, match="share the name 'a/b'"):
        flatten_state({"a/b": np.ones(1), "a": {"b": np.ones(1)}})
    arrays, skeleton = flatten_state(np.arange(3))
    assert np.array_equal(unflatten_state(arrays, skeleton), np.arange(3))


@pytest.mark.parametrize("format", FORMATS)
def test_save_and_load_state_round_trip(tmp_path, format):
    state = {"w": np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32),
             "ints": np.arange(3), "flag": np.array([True, False]), "note": "hello", "epoch": 3}
    path = save_state(tmp_path / "state.bin", state, format=format)
    back = load_state(path)
    for key in ("w", "ints", "flag"):
        assert back[key].dtype == state[key].dtype
        np.testing.assert_array_equal(back[key], state[key])
    assert back["note"] == "hello" and back["epoch"] == 3


def test_the_format_is_recognised_from_the_bytes_not_the_name(tmp_path):
    path = save_state(tmp_path / "misnamed.safetensors", {"w": np.ones(2, np.float32)}, format="npz")
    np.testing.assert_array_equal(load_state(path)["w"], np.ones(2, np.float32))


def test_loading_never_unpickles(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, tinytorch=np.frombuffer(b'{"__array__": "x"}', np.uint8), x=np.array([object()], dtype=object))
    with pytest.raises(ValueError, match="not a TinyTorch checkpoint"):
        load_state(path)


def test_bad_files_are_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_state(tmp_path / "missing.ckpt")
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00hello world")
    with pytest.raises(ValueError, match="not a TinyTorch checkpoint"):
        load_state(junk)


def test_a_foreign_safetensors_file_is_explained(tmp_path):
    import safetensors.numpy as safetensors_numpy

    path = tmp_path / "other.safetensors"
    safetensors_numpy.save_file({"w": np.ones(2, np.float32)}, str(path))
    with pytest.raises(ValueError, match="another program"):
        load_state(path)


def test_a_failed_write_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    model = classifier()
    path = save_checkpoint(tmp_path / "run.ckpt", model, epoch=1)
    before = path.read_bytes()

    def disk_full(descriptor):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)  # fails after the temporary file was written
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(path, model, epoch=2)
    assert path.read_bytes() == before, "the old checkpoint must be intact"
    assert [p.name for p in tmp_path.iterdir()] == ["run.ckpt"], "the temporary file must be removed"


@pytest.mark.parametrize("format", FORMATS)
def test_checkpoint_restores_model_and_optimizer(tmp_path, format):
    inputs, labels = blobs()
    model = classifier(seed=1)
    optimizer = Adam(model.parameters(), lr=0.01)
    Trainer(model, optimizer, CrossEntropyLoss(), verbose=False).fit(loader_of(inputs, labels, 40), epochs=1)
    path = save_checkpoint(tmp_path / "c.ckpt", model, optimizer, epoch=1, history={"train_loss": [1.0]},
                           format=format)
    fresh = classifier(seed=2)
    fresh_optimizer = Adam(fresh.parameters(), lr=0.5)
    state = load_checkpoint(path, fresh, fresh_optimizer)
    assert state["epoch"] == 1 and state["history"] == {"train_loss": [1.0]}
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(fresh.state_dict()[name], value)
    assert fresh_optimizer.param_groups[0]["lr"] == 0.01
    saved, loaded = optimizer.state_dict()["state"], fresh_optimizer.state_dict()["state"]
    for position in saved:
        np.testing.assert_array_equal(loaded[position]["exp_avg_sq"], saved[position]["exp_avg_sq"])


def test_loading_a_missing_part_is_explained(tmp_path):
    model = classifier()
    path = save_checkpoint(tmp_path / "weights.ckpt", model)
    with pytest.raises(ValueError, match="no optimizer state"):
        load_checkpoint(path, model, SGD(model.parameters(), lr=0.1))
    plain = save_state(tmp_path / "plain.ckpt", {"w": np.ones(1)})
    with pytest.raises(ValueError, match="not a checkpoint written by save_checkpoint"):
        load_checkpoint(plain, model)


# ---- early stopping --------------------------------------------------------------------------------
def test_early_stopping_counts_epochs_without_improvement():
    stopper = EarlyStopping("val_loss", patience=2, min_delta=0.05)
    assert stopper.update(1.0, 1)
    assert not stopper.update(0.97, 2), "an improvement smaller than min_delta does not count"
    assert stopper.update(0.9, 3) and stopper.epochs_without_improvement == 0
    assert not stopper.update(float("nan"), 4) and not stopper.should_stop
    assert not stopper.update(2.0, 5) and stopper.should_stop
    assert (stopper.best, stopper.best_epoch) == (0.9, 3)


def test_early_stopping_modes_and_validation():
    assert EarlyStopping("val_accuracy").mode == "max"
    assert EarlyStopping("val_loss").mode == "min"
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping("val_loss", patience=0)


# ---- the Trainer -----------------------------------------------------------------------------------
def test_fit_reduces_the_loss_and_records_the_history():
    inputs, labels = blobs()
    loader = loader_of(inputs, labels, 32)
    model = classifier()
    trainer = Trainer(model, Adam(model.parameters(), lr=0.05), CrossEntropyLoss(), verbose=False)
    history = trainer.fit(loader, val_dataloader=loader, epochs=8)
    assert set(history) >= {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"}
    assert all(len(values) == 8 for values in history.values())
    assert history["epoch"] == list(range(1, 9)) and trainer.current_epoch == 8
    assert history["train_loss"][-1] < 0.3 * history["train_loss"][0]
    assert history["val_accuracy"][-1] >= 0.95
    assert history["lr"] == [0.05] * 8
    for phase in ("forward_seconds", "backward_seconds", "step_seconds"):
        assert all(s > 0 for s in history[phase])
        assert all(p <= total for p, total in zip(history[phase], history["seconds"]))


def test_epoch_loss_is_the_example_weighted_mean():
    inputs, labels = blobs(n_per_class=10)  # 30 examples: batches of 20 and 10
    model = classifier()
    trainer = Trainer(model, SGD(model.parameters(), lr=0.0), CrossEntropyLoss(), verbose=False)
    loader = loader_of(inputs, labels, 20)
    history = trainer.fit(loader, epochs=1)
    losses = [CrossEntropyLoss()(model(x), y).item() for x, y in loader]
    assert history["train_loss"][0] == pytest.approx((20 * losses[0] + 10 * losses[1]) / 30, rel=1e-6)
    assert trainer.evaluate(loader)["loss"] == pytest.approx(history["train_loss"][0], rel=1e-6)


def test_a_plain_list_of_numpy_batches_is_a_loader():
    inputs, labels = blobs()
    loader = [(inputs[i : i + 30], labels[i : i + 30]) for i in range(0, 120, 30)]
    model = classifier()
    history = Trainer(model, Adam(model.parameters(), lr=0.05), CrossEntropyLoss(), verbose=False).fit(loader, epochs=3)
    assert history["train_loss"][-1] < history["train_loss"][0]


def test_a_bad_batch_is_explained():
    model = classifier()
    trainer = Trainer(model, SGD(model.parameters(), lr=0.1), CrossEntropyLoss(), verbose=False)
    with pytest.raises(TypeError, match=r"pair \(inputs, targets\).*length 3"):
        trainer.fit([(np.zeros((2, 2)), np.zeros(2), np.zeros(2))], epochs=1)
    with pytest.raises(ValueError, match="gave no batches"):
        trainer.fit([], epochs=1)


def test_a_nan_loss_stops_training_with_epoch_batch_and_advice():
    inputs, labels = blobs(n_per_class=20)
    poisoned = inputs.copy()
    poisoned[45] = np.nan  # in the second batch of 30
    loader = loader_of(poisoned, labels, 30)
    model = classifier()
    trainer = Trainer(model, SGD(model.parameters(), lr=0.1), CrossEntropyLoss(), verbose=False)
    with pytest.raises(FloatingPointError) as error:
        trainer.fit(loader, epochs=2)
    message = str(error.value)
    assert "epoch 1, batch 2" in message
    assert "learning rate" in message and "0.1" in message and "grad_clip" in message
    assert all(np.isfinite(w).all() for w in model.state_dict().values()), "the NaN step must not be applied"


def test_a_diverging_learning_rate_is_caught():
    inputs, labels = blobs()
    model = classifier()
    trainer = Trainer(model, SGD(model.parameters(), lr=1e8), CrossEntropyLoss(), verbose=False)
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError, match=r"epoch \d+, batch \d+"):
        trainer.fit(loader_of(inputs * 1e4, labels, 10), epochs=5)


def test_grad_clip_bounds_the_step():
    inputs, labels = blobs()
    model = classifier()
    before = weights_of(model)
    trainer = Trainer(model, SGD(model.parameters(), lr=1.0), CrossEntropyLoss(), grad_clip=0.01, verbose=False)
    trainer.fit([(Tensor(inputs * 100), Tensor(labels))], epochs=1)
    change = math.sqrt(sum(((model.state_dict()[k] - v) ** 2).sum() for k, v in before.items()))
    assert 0 < change <= 0.01 + 1e-6, "with SGD lr=1 the step is the clipped gradient: norm <= grad_clip"
    with pytest.raises(ValueError, match="grad_clip"):
        Trainer(model, SGD(model.parameters(), lr=1.0), CrossEntropyLoss(), grad_clip=0)


def test_the_scheduler_steps_once_per_epoch():
    inputs, labels = blobs()
    model = classifier()
    optimizer = SGD(model.parameters(), lr=0.4)
    trainer = Trainer(model, optimizer, CrossEntropyLoss(), scheduler=StepLR(optimizer, step_size=1, gamma=0.5),
                      verbose=False)
    history = trainer.fit(loader_of(inputs, labels, 60), epochs=3)
    assert history["lr"] == pytest.approx([0.4, 0.2, 0.1])


def test_a_step_scheduler_steps_after_every_batch():
    inputs, labels = blobs()
    model = classifier()
    optimizer = SGD(model.parameters(), lr=0.1)
    scheduler = LambdaLR(optimizer, lambda step: 1.0 / (1 + step))
    trainer = Trainer(model, optimizer, CrossEntropyLoss(), scheduler=scheduler, scheduler_interval="step",
                      verbose=False)
    history = trainer.fit(loader_of(inputs, labels, 30), epochs=2)  # 4 batches per epoch
    assert scheduler.last_epoch == 8
    assert history["lr"] == pytest.approx([0.1, 0.1 / 5])
    with pytest.raises(ValueError, match="scheduler_interval"):
        Trainer(model, optimizer, CrossEntropyLoss(), scheduler_interval="batch")


def test_regression_has_no_accuracy_and_binary_logits_do():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 2)).astype(np.float32)
    manual_seed(0)
    regression = Linear(2, 1)
    history = Trainer(regression, SGD(regression.parameters(), lr=0.1), MSELoss(), verbose=False).fit(
        [(x, (x @ np.array([[1.0], [-2.0]], np.float32)))], epochs=3)
    assert history["train_accuracy"] == [None] * 3
    y = (x[:, :1] > 0).astype(np.float32)
    binary = Linear(2, 1)
    trainer = Trainer(binary, Adam(binary.parameters(), lr=0.1), BCEWithLogitsLoss(), verbose=False)
    history = trainer.fit([(x, y)], epochs=30)
    logits = binary(Tensor(x)).data
    assert history["train_accuracy"][-1] == pytest.approx(((logits > 0) == y).mean(), abs=0.05)
    assert history["train_accuracy"][-1] > 0.9
    report = evaluate_model(binary, [(x, y)], loss_fn=BCEWithLogitsLoss())
    assert report["accuracy"] == pytest.approx(((logits > 0) == y).mean())


def test_evaluate_and_predict_use_eval_mode_and_record_no_graph():
    inputs, labels = blobs()
    loader = loader_of(inputs, labels, 50)
    model = classifier()
    trainer = Trainer(model, SGD(model.parameters(), lr=0.1), CrossEntropyLoss(), verbose=False)
    model.train()
    result = trainer.evaluate(loader)
    assert model.training, "evaluate must put the model back in training mode"
    assert set(result) == {"loss", "accuracy"}
    outputs = trainer.predict(Tensor(inputs))
    assert not outputs.requires_grad and outputs.shape == (120, 3)
    from_loader = trainer.predict(loader)
    from_bare_batches = trainer.predict([x for x, _ in loader])
    np.testing.assert_allclose(from_loader.numpy(), outputs.numpy(), rtol=1e-6)
    np.testing.assert_allclose(from_bare_batches.numpy(), outputs.numpy(), rtol=1e-6)
    assert all(p.grad is None for p in model.parameters())


def test_dropout_is_off_in_evaluation_and_on_in_training():
    inputs, labels = blobs()
    loader = loader_of(inputs, labels, 60)
    manual_seed(0)
    model = Sequential(Linear(2, 32), ReLU(), Dropout(0.5), Linear(32, 3))
    trainer = Trainer(model, SGD(model.parameters(), lr=0.0), CrossEntropyLoss(), verbose=False)
    assert trainer.evaluate(loader)["loss"] == trainer.evaluate(loader)["loss"], "no dropout in evaluation"
    np.testing.assert_array_equal(trainer.predict(Tensor(inputs)).numpy(), trainer.predict(Tensor(inputs)).numpy())
    history = trainer.fit(loader, val_dataloader=loader, epochs=2)  # lr=0: only dropout changes the loss
    assert history["train_loss"][0] != history["train_loss"][1], "dropout is active while training"
    assert history["val_loss"][0] == history["val_loss"][1]


def test_early_stopping_stops_fit():
    inputs, labels = blobs()
    loader = loader_of(inputs, labels, 60)
    model = classifier()
    trainer = Trainer(model, SGD(model.parameters(), lr=0.0), CrossEntropyLoss(), verbose=False)
    history = trainer.fit(loader, val_dataloader=loader, epochs=30, early_stopping_patience=2)
    assert trainer.stopped_early and history["epoch"] == [1, 2, 3]
    again = Trainer(classifier(), SGD(classifier().parameters(), lr=0.0), CrossEntropyLoss(), verbose=False)
    assert len(again.fit(loader, epochs=4)["epoch"]) == 4 and not again.stopped_early


def test_save_best_keeps_the_best_epoch_and_plain_checkpoints_the_last(tmp_path):
    train_x, train_y = blobs(seed=1)
    val_x, val_y = blobs(n_per_class=15, seed=2)
    model = classifier(seed=4)
    trainer = Trainer(model, Adam(model.parameters(), lr=0.2), CrossEntropyLoss(), verbose=False)
    history = trainer.fit(loader_of(train_x, train_y, 16), val_dataloader=loader_of(val_x, val_y, 45), epochs=8,
                          save_best=True, checkpoint_path=tmp_path / "best.ckpt", monitor="val_loss")
    best = load_checkpoint(tmp_path / "best.ckpt")
    assert best["epoch"] == int(np.argmin(history["val_loss"])) + 1
    assert best["history"]["val_loss"][-1] == min(history["val_loss"])
    trainer.fit(loader_of(train_x, train_y, 16), epochs=2, checkpoint_path=tmp_path / "last.ckpt")
    assert load_checkpoint(tmp_path / "last.ckpt")["epoch"] == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.ckpt", "last.ckpt"]


def test_fit_arguments_are_checked():
    model = classifier()
    trainer = Trainer(model, SGD(model.parameters(), lr=0.1), CrossEntropyLoss(), verbose=False)
    loader = loader_of(*blobs(), 60)
    with pytest.raises(ValueError, match="checkpoint_path"):
        trainer.fit(loader, save_best=True)
    with pytest.raises(ValueError, match="val_dataloader"):
        trainer.fit(loader, monitor="val_accuracy")
    with pytest.raises(ValueError, match="epochs"):
        trainer.fit(loader, epochs=-1)


@pytest.mark.parametrize("format", FORMATS)
def test_resume_continues_training_identically(tmp_path, format):
    inputs, labels = blobs()
    loader = loader_of(inputs, labels, 32)

    def fresh():
        model = classifier(seed=7)
        optimizer = Adam(model.parameters(), lr=0.02)
        return Trainer(model, optimizer, CrossEntropyLoss(), scheduler=StepLR(optimizer, 1, gamma=0.7),
                       verbose=False)

    straight = fresh()
    straight.fit(loader, val_dataloader=loader, epochs=2)
    first = fresh()
    first.fit(loader, val_dataloader=loader, epochs=1)
    first.save_checkpoint(tmp_path / "epoch1.ckpt", format=format)
    resumed = fresh()
    resumed.load_checkpoint(tmp_path / "epoch1.ckpt")
    resumed.fit(loader, val_dataloader=loader, epochs=1)
    for name, value in straight.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[name], value, err_msg=name)
    for key in ("epoch", "train_loss", "val_loss", "train_accuracy", "lr"):
        assert resumed.history[key] == straight.history[key], key


def test_verbose_prints_one_line_per_epoch_without_a_terminal(capsys, monkeypatch):
    for variable in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(variable, raising=False)  # rich would treat the output as a terminal
    inputs, labels = blobs()
    model = classifier()
    loader = loader_of(inputs, labels, 60)
    Trainer(model, Adam(model.parameters(), lr=0.05), CrossEntropyLoss(), verbose=True).fit(
        loader, val_dataloader=loader, epochs=2)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 2 and lines[0].startswith("epoch 1") and "train loss" in lines[0] and "val acc" in lines[1]
    Trainer(model, Adam(model.parameters(), lr=0.05), CrossEntropyLoss(), verbose=False).fit(loader, epochs=2)
    assert capsys.readouterr().out == ""


def test_one_epoch_matches_pytorch(torch):
    inputs, labels = blobs()
    loader = loader_of(inputs, labels, 32)
    model = classifier(sizes=(2, 8, 3))
    reference = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    with torch.no_grad():
        for ours, theirs in zip(model.layers, (reference[0], reference[2])):
            theirs.weight.copy_(torch.from_numpy(ours.weight.data.copy()))
            theirs.bias.copy_(torch.from_numpy(ours.bias.data.copy()))
    history = Trainer(model, Adam(model.parameters(), lr=0.01), CrossEntropyLoss(), verbose=False).fit(loader, epochs=2)
    optimizer = torch.optim.Adam(reference.parameters(), lr=0.01)
    losses = []
    for _ in range(2):
        total = 0.0
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(reference(torch.from_numpy(x.numpy())), torch.from_numpy(y.numpy()))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(y)
        losses.append(total / len(labels))
    np.testing.assert_allclose(history["train_loss"], losses, rtol=1e-4)
    np.testing.assert_allclose(model.layers[0].weight.data, reference[0].weight.detach().numpy(), atol=1e-5)


# ---- evaluate_model and the plot -------------------------------------------------------------------
def test_evaluate_model_reports_every_metric():
    inputs, labels = blobs()
    loader = loader_of(inputs, labels, 50)
    model = classifier()
    Trainer(model, Adam(model.parameters(), lr=0.05), CrossEntropyLoss(), verbose=False).fit(loader, epochs=5)
    report = evaluate_model(model, loader, loss_fn=CrossEntropyLoss())
    predicted = model(Tensor(inputs)).data.argmax(axis=1)
    assert report["accuracy"] == pytest.approx((predicted == labels).mean())
    assert np.array_equal(report["confusion_matrix"], confusion_matrix(predicted, labels))
    assert report["f1"] == pytest.approx(precision_recall_f1(predicted, labels)["f1"])
    assert report["per_class"]["support"].tolist() == [40, 40, 40]
    assert report["samples"] == 120 and "loss" in report
    assert "loss" not in evaluate_model(model, loader)


def test_plot_training_history_writes_a_png_atomically(tmp_path):
    history = {"epoch": [1, 2, 3], "train_loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.7, 0.6],
               "train_accuracy": [0.5, 0.7, 0.8], "val_accuracy": [None, 0.6, 0.7]}
    path = plot_training_history(history, tmp_path / "plots" / "history.png", title="blobs")
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert [p.name for p in path.parent.iterdir()] == ["history.png"]
    with pytest.raises(ValueError, match="no epochs"):
        plot_training_history({"epoch": []}, tmp_path / "empty.png")


@pytest.mark.parametrize("fmt", FORMATS)
def test_zero_dimensional_arrays_keep_their_shape(tmp_path, fmt):
    """A 0-d buffer (BatchNorm's num_batches_tracked) must come back 0-d, or load_state_dict refuses it."""
    state = {"count": np.array(7, dtype=np.int64), "scale": np.full((), 0.5, np.float32)}
    path = save_state(tmp_path / f"state.{fmt}", state, format=fmt)
    loaded = load_state(path)
    assert loaded["count"].shape == () and int(loaded["count"]) == 7
    assert loaded["scale"].shape == ()


# ---- untrusted checkpoint files ------------------------------------------------------------------------
def _unchecked(data, format):
    """The same file without its checksum, as files saved before checksums existed look."""
    if format == "safetensors":
        header, body = safetensors_parts(data)
        del header["__metadata__"]["tinytorch_sha256"]
        return safetensors_file(header, body)
    members = npz_members(data)
    del members["tinytorch_sha256"]
    return npz_file(members)


def test_a_flipped_byte_in_a_weight_is_detected(tmp_path):
    model = classifier()
    path = save_checkpoint(tmp_path / "run.safetensors", model)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40  # inside the last tensor's bytes: a weight silently becomes another number
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"run\.safetensors is damaged: checksum mismatch"):
        load_state(path)


def test_the_checksum_is_checked_in_npz_files_too(tmp_path):
    path = save_checkpoint(tmp_path / "run.npz", classifier(), format="npz")
    members = npz_members(path.read_bytes())
    members["model/layers.0.bias"] = npy_bytes(np.ones(16, np.float32))  # a valid zip, a changed weight
    path.write_bytes(npz_file(members))
    with pytest.raises(CheckpointError, match=r"run\.npz is damaged: checksum mismatch"):
        load_state(path)


@pytest.mark.parametrize("format", FORMATS)
def test_files_saved_without_a_checksum_still_load(tmp_path, format):
    model = classifier(seed=3)
    path = save_checkpoint(tmp_path / "old.ckpt", model, format=format)
    path.write_bytes(_unchecked(path.read_bytes(), format))
    fresh = classifier(seed=4)
    load_checkpoint(path, fresh)
    for name, array in weights_of(model).items():
        np.testing.assert_array_equal(fresh.state_dict()[name], array)


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.5, 0.99])
def test_a_cut_file_is_the_loaders_error_naming_the_file(tmp_path, format, fraction):
    path = save_checkpoint(tmp_path / "cut.ckpt", classifier(), format=format)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(CheckpointError, match=r"cut\.ckpt"):
        load_state(path)


def _safetensors_with_metadata(path, skeleton_text):
    from safetensors.numpy import save

    path.write_bytes(save({"w": np.ones(2, np.float32)}, metadata={"tinytorch": skeleton_text}))
    return path


@pytest.mark.parametrize("skeleton,message", [
    ({"__array__": "missing"}, "names the array 'missing'"),
    ({"a": {"__tensor__": 5}}, "names the array 5 at 'a'"),
    ({"__tuple__": {"x": 1}}, "__tuple__ that is not a list"),
    ({"__dict__": [[1]]}, "not a \\[key, value\\] pair"),
    ({"__dict__": [[[1, 2], 3]]}, "dict key \\[1, 2\\]"),
    ({"__array__": "w", "extra": 1}, "unknown or mixed tag"),
    ({"__ndarray__": "w"}, "unknown or mixed tag"),
    (json.loads("[" * 101 + "]" * 101), "nests deeper than 100 levels"),
])
def test_malformed_metadata_is_the_loaders_error(tmp_path, skeleton, message):
    path = _safetensors_with_metadata(tmp_path / "bad.safetensors", json.dumps(skeleton))
    with pytest.raises(CheckpointError, match=f"bad\\.safetensors is damaged: its metadata .*{message}"):
        load_state(path)


def test_metadata_nested_beyond_the_parser_is_the_loaders_error(tmp_path):
    path = _safetensors_with_metadata(tmp_path / "deep.safetensors", "[" * 100_000 + "]" * 100_000)
    with pytest.raises(CheckpointError, match="nests too deeply"):
        load_state(path)


def test_a_huge_shape_in_an_npz_header_is_refused_before_allocating(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**12,)})
    members = {"w": header.getvalue() + b"\0" * 8, "tinytorch": text_npy('{"__array__": "w"}')}
    path = tmp_path / "huge.npz"
    path.write_bytes(npz_file(members))
    with pytest.raises(CheckpointError, match=r"huge\.npz.*shape \(1000000000000,\) needs"):
        load_state(path)


def test_save_state_refuses_what_load_state_would_refuse(tmp_path):
    deep = []
    for _ in range(150):
        deep = [deep]
    with pytest.raises(ValueError, match="nests deeper than 100 levels"):
        save_state(tmp_path / "deep.ckpt", {"history": deep})
    with pytest.raises(ValueError, match="dict key"):
        save_state(tmp_path / "tuple-key.ckpt", {"extra": {(1, 2): 3}})
    with pytest.raises(TypeError, match="pickle"):
        save_state(tmp_path / "objects.ckpt", {"w": np.array([object()])}, format="npz")
    assert not list(tmp_path.iterdir()), "nothing is written"


def test_keys_spelled_like_tags_survive_a_round_trip(tmp_path):
    state = {"extra": {"__version__": 2, "__array__": "not an array", "__": 1}}
    assert load_state(save_state(tmp_path / "keys.ckpt", state)) == state


def test_a_refused_optimizer_state_leaves_the_model_as_it_was(tmp_path):
    model, optimizer, scheduler = trained_run()
    path = save_checkpoint(tmp_path / "sgd.ckpt", model, SGD(model.parameters(), lr=0.1, momentum=0.9))
    target = trained_run(seed=7)
    before = snapshot(*target)
    with pytest.raises(CheckpointError, match=r"(?s)optimizer state in .*sgd\.ckpt does not fit.*'SGD', not by Adam"):
        load_checkpoint(path, target[0], target[1])
    assert_same_snapshot(before, snapshot(*target))


def test_a_refused_scheduler_state_leaves_model_and_optimizer_as_they_were(tmp_path):
    model, optimizer, scheduler = trained_run()
    state = {"format": "tinytorch-checkpoint", "version": 1, "epoch": 1, "model": model.state_dict(),
             "optimizer": optimizer.state_dict(), "scheduler": {**scheduler.state_dict(), "base_lrs": [-1.0]},
             "history": None, "extra": None}
    path = save_state(tmp_path / "bad-scheduler.ckpt", state)
    target = trained_run(seed=7)
    before = snapshot(*target)
    with pytest.raises(CheckpointError, match="(?s)scheduler state .* base_lrs\\[0\\] must be >= 0"):
        load_checkpoint(path, *target)
    assert_same_snapshot(before, snapshot(*target))


def test_a_model_state_that_cannot_be_cast_changes_nothing(tmp_path):
    model, optimizer, scheduler = trained_run()
    weights = model.state_dict()
    weights[list(weights)[-1]] = weights[list(weights)[-1]].astype(np.complex64)  # the last array fails
    state = {"format": "tinytorch-checkpoint", "version": 1, "epoch": 1, "model": weights,
             "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "history": None, "extra": None}
    path = save_state(tmp_path / "complex.ckpt", state)
    target = trained_run(seed=7)
    before = snapshot(*target)
    with pytest.raises(CheckpointError, match="(?s)model state .* complex64"):
        load_checkpoint(path, *target)
    assert_same_snapshot(before, snapshot(*target))


def test_a_whole_checkpoint_loads_model_optimizer_and_scheduler(tmp_path):
    source = trained_run()
    path = save_checkpoint(tmp_path / "run.ckpt", *source, epoch=1)
    target = trained_run(seed=7)
    load_checkpoint(path, *target)
    assert_same_snapshot(snapshot(*source), snapshot(*target))


@pytest.mark.parametrize("field,value,message", [
    ("version", 2, "version 2"),
    ("epoch", "three", "epoch is 'three'"),
    ("epoch", -1, "epoch is -1"),
    ("history", "train_loss", "history is a str, not a dict or a list"),
])
def test_checkpoint_fields_are_checked(tmp_path, field, value, message):
    path = save_checkpoint(tmp_path / "fields.ckpt", classifier())
    state = load_state(path)
    state[field] = value
    save_state(path, state)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path, classifier())


@pytest.mark.parametrize("history", [None, [{"step": 1, "loss": 2.0}]])
def test_trainer_resume_refuses_a_checkpoint_without_a_trainer_history_and_changes_nothing(tmp_path, history):
    source, target = classifier(seed=1), classifier(seed=2)
    path = save_checkpoint(tmp_path / "run.ckpt", source, epoch=3, history=history)
    trainer = Trainer(target, SGD(target.parameters(), lr=0.1), CrossEntropyLoss(), verbose=False)
    before = {name: array.copy() for name, array in target.state_dict().items()}
    with pytest.raises(ValueError, match="holds no Trainer history"):
        trainer.load_checkpoint(path)
    assert all(np.array_equal(before[name], array) for name, array in target.state_dict().items())
    assert trainer.current_epoch == 0
