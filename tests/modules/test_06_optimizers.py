"""Module 06 Optimizers, graded through the exported package `tinytorch.core.optimizers`.

Gradients are set by hand (`param.grad = array`), so these tests need no autograd.
"""

import math

import numpy as np
import pytest

from tinytorch.core import optimizers as ours
from tinytorch.core.layers import Linear, Sequential
from tinytorch.core.optimizers import (
    SGD,
    Adam,
    AdamW,
    CosineAnnealingLR,
    CosineWarmupLR,
    LambdaLR,
    RMSprop,
    StepLR,
    clip_grad_norm_,
)
from tinytorch.core.tensor import Tensor

SHAPES = [(4, 3), (3,), (2, 2, 2)]
TIGHT = {"rtol": 1e-12, "atol": 1e-14}


def float64_params(seed=0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [Tensor(rng.standard_normal(shape), dtype=np.float64, requires_grad=True) for shape in shapes]


def torch_copies(torch, params):
    return [torch.tensor(p.numpy().copy(), requires_grad=True) for p in params]


def set_gradients(torch, ours_params, torch_params, rng, skip=()):
    """The same random gradient on both sides; parameters listed in `skip` get none."""
    for index, (mine, theirs) in enumerate(zip(ours_params, torch_params)):
        if index in skip:
            mine.grad, theirs.grad = None, None
            continue
        grad = rng.standard_normal(mine.shape)
        mine.grad = grad.copy()
        theirs.grad = torch.tensor(grad)


def assert_same_params(ours_params, torch_params, step):
    for index, (mine, theirs) in enumerate(zip(ours_params, torch_params)):
        np.testing.assert_allclose(mine.numpy(), theirs.detach().numpy(), **TIGHT,
                                   err_msg=f"parameter {index} differs from PyTorch after step {step}")


# ---- parity with torch.optim ---------------------------------------------------------------------
CONFIGURATIONS = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.5}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"lr": 0.1, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "weight_decay": 0.1, "nesterov": True}),
    ("Adam", {}),
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "amsgrad": True}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("AdamW", {}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.0}),
    ("RMSprop", {}),
    ("RMSprop", {"lr": 0.001, "alpha": 0.9, "eps": 1e-6}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9}),
    ("RMSprop", {"lr": 0.01, "centered": True}),
    ("RMSprop", {"lr": 0.01, "centered": True, "momentum": 0.5, "weight_decay": 0.1}),
]


@pytest.mark.parametrize("name,options", CONFIGURATIONS, ids=lambda value: str(value))
def test_optimizer_matches_torch_step_by_step(torch, name, options):
    params = float64_params()
    reference = torch_copies(torch, params)
    optimizer = getattr(ours, name)(params, **options)
    torch_optimizer = getattr(torch.optim, name)(reference, **options)
    rng = np.random.default_rng(1)
    for step in range(8):
        # parameter 1 gets no gradient at steps 2 and 3: both must skip it (and start its state later)
        set_gradients(torch, params, reference, rng, skip={1} if step in (2, 3) else ())
        optimizer.step()
        torch_optimizer.step()
        assert_same_params(params, reference, step)
    torch_state = torch_optimizer.state_dict()["state"]
    for index, param in enumerate(params):
        for key, value in optimizer.state[param].items():
            expected = torch_state[index][key]
            expected = expected.item() if key == "step" else expected.numpy()
            np.testing.assert_allclose(value, expected, **TIGHT, err_msg=f"state '{key}' of parameter {index}")


def test_parameter_groups_with_their_own_options_match_torch(torch):
    params = float64_params()
    reference = torch_copies(torch, params)

    def groups(p):
        return [{"params": [p[0]], "lr": 0.01}, {"params": [p[1], p[2]], "momentum": 0.5, "nesterov": True}]

    optimizer = SGD(groups(params), lr=0.1, momentum=0.9)
    torch_optimizer = torch.optim.SGD(groups(reference), lr=0.1, momentum=0.9)
    assert [g["lr"] for g in optimizer.param_groups] == [0.01, 0.1]
    assert [g["momentum"] for g in optimizer.param_groups] == [0.9, 0.5]
    rng = np.random.default_rng(2)
    for step in range(5):
        set_gradients(torch, params, reference, rng)
        optimizer.step()
        torch_optimizer.step()
        assert_same_params(params, reference, step)


def test_adam_groups_and_add_param_group_match_torch(torch):
    params = float64_params(3)
    reference = torch_copies(torch, params)
    optimizer = Adam(params[:2], lr=0.01, betas=(0.85, 0.995))
    torch_optimizer = torch.optim.Adam(reference[:2], lr=0.01, betas=(0.85, 0.995))
    optimizer.add_param_group({"params": params[2], "lr": 0.1, "weight_decay": 0.5})
    torch_optimizer.add_param_group({"params": reference[2], "lr": 0.1, "weight_decay": 0.5})
    rng = np.random.default_rng(3)
    for step in range(5):
        set_gradients(torch, params, reference, rng)
        optimizer.step()
        torch_optimizer.step()
        assert_same_params(params, reference, step)


def test_a_pytorch_optimizer_checkpoint_continues_here(torch):
    params = float64_params(4)
    reference = torch_copies(torch, params)
    torch_optimizer = torch.optim.Adam(reference, lr=0.01, amsgrad=True)
    rng = np.random.default_rng(4)
    for _ in range(3):
        set_gradients(torch, params, reference, rng)
        torch_optimizer.step()
    for mine, theirs in zip(params, reference):
        mine.data[...] = theirs.detach().numpy()
    saved = torch_optimizer.state_dict()
    converted = {
        "state": {
            index: {key: int(value.item()) if key == "step" else value.numpy().copy() for key, value in entry.items()}
            for index, entry in saved["state"].items()
        },
        "param_groups": saved["param_groups"],
    }
    optimizer = Adam(params, lr=0.01, amsgrad=True)
    optimizer.load_state_dict(converted)
    for step in range(3):
        set_gradients(torch, params, reference, rng)
        optimizer.step()
        torch_optimizer.step()
        assert_same_params(params, reference, step)


# ---- behaviour shared by every optimizer ---------------------------------------------------------------
ALL = [
    lambda p: SGD(p, lr=0.1, momentum=0.9, weight_decay=0.1),
    lambda p: Adam(p, lr=0.01, weight_decay=0.1, amsgrad=True),
    lambda p: AdamW(p, lr=0.01),
    lambda p: RMSprop(p, lr=0.01, momentum=0.9, centered=True, weight_decay=0.1),
]
ALL_IDS = ["SGD", "Adam", "AdamW", "RMSprop"]


@pytest.mark.parametrize("make", ALL, ids=ALL_IDS)
def test_updates_are_in_place_keep_the_dtype_and_leave_the_gradient_alone(make):
    param = Tensor(np.ones((3, 2), dtype=np.float32), requires_grad=True)
    array = param.data
    optimizer = make([param])
    param.grad = np.full((3, 2), 0.5)  # float64 gradient for a float32 parameter
    optimizer.step()
    assert param.data is array, "the update must write into the parameter's array"
    assert param.dtype == np.float32
    assert not np.allclose(param.numpy(), 1.0)
    np.testing.assert_array_equal(param.grad, 0.5)


@pytest.mark.parametrize("make", ALL, ids=ALL_IDS)
def test_state_dict_round_trip_continues_identically(make):
    params = float64_params(5)
    optimizer = make(params)
    rng = np.random.default_rng(5)
    gradients = [[rng.standard_normal(p.shape) for p in params] for _ in range(6)]

    def step(optimizer, params, grads):
        for param, grad in zip(params, grads):
            param.grad = grad.copy()
        optimizer.step()

    for grads in gradients[:3]:
        step(optimizer, params, grads)
    saved = optimizer.state_dict()
    copies = [Tensor(p.numpy().copy(), dtype=np.float64, requires_grad=True) for p in params]
    resumed = make(copies)
    resumed.load_state_dict(saved)
    for grads in gradients[3:]:
        step(optimizer, params, grads)
        step(resumed, copies, grads)
    for original, copy in zip(params, copies):
        np.testing.assert_array_equal(original.numpy(), copy.numpy())


def test_state_dict_is_a_copy_in_pytorch_format():
    params = float64_params()
    optimizer = Adam(params, lr=0.01)
    for param in params:
        param.grad = np.ones(param.shape)
    optimizer.step()
    saved = optimizer.state_dict()
    assert saved["param_groups"][0]["params"] == [0, 1, 2] and saved["param_groups"][0]["lr"] == 0.01
    assert set(saved["state"][0]) == {"step", "exp_avg", "exp_avg_sq"} and saved["state"][0]["step"] == 1
    before = saved["state"][0]["exp_avg"].copy()
    optimizer.step()
    np.testing.assert_array_equal(saved["state"][0]["exp_avg"], before)


def test_load_state_dict_accepts_string_positions_and_restores_options():
    params = float64_params()
    optimizer = SGD(params, lr=0.1, momentum=0.9)
    for param in params:
        param.grad = np.ones(param.shape)
    optimizer.step()
    saved = optimizer.state_dict()
    saved = {"state": {str(k): v for k, v in saved["state"].items()}, "param_groups": saved["param_groups"]}
    saved["param_groups"][0]["lr"] = 0.5
    other = SGD(float64_params(), lr=0.1, momentum=0.9)
    other.load_state_dict(saved)
    assert other.param_groups[0]["lr"] == 0.5
    buffers = [other.state[p]["momentum_buffer"] for p in other.param_groups[0]["params"]]
    assert all(np.array_equal(b, np.ones(b.shape)) for b in buffers)


def test_load_state_dict_refuses_a_checkpoint_that_does_not_fit():
    params = float64_params()
    optimizer = SGD(params, lr=0.1, momentum=0.9)
    for param in params:
        param.grad = np.ones(param.shape)
    optimizer.step()
    saved = optimizer.state_dict()
    with pytest.raises(ValueError, match="group 0 has 3 parameters in the checkpoint but 2 here"):
        SGD(params[:2], lr=0.1).load_state_dict(saved)
    with pytest.raises(ValueError, match="1 parameter group\\(s\\), this optimizer 2"):
        SGD([{"params": params[:1]}, {"params": params[1:]}], lr=0.1).load_state_dict(saved)
    reordered = [params[1], params[0], params[2]]
    fresh = SGD(reordered, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="has shape \\(4, 3\\) but the parameter has shape \\(3,\\)"):
        fresh.load_state_dict(saved)
    assert fresh.state == {}, "a refused checkpoint changes nothing"


def stepped(make, seed=0):
    """An optimizer made by `make` after two steps, so that its state holds arrays."""
    params = float64_params(seed)
    optimizer = make(params)
    for _ in range(2):
        for param in params:
            param.grad = np.ones(param.shape)
        optimizer.step()
    return optimizer


def optimizer_snapshot(optimizer):
    saved = optimizer.state_dict()
    return saved["param_groups"], {position: {key: np.copy(value) for key, value in entry.items()}
                                   for position, entry in saved["state"].items()}


def assert_unchanged(optimizer, before):
    groups, state = optimizer_snapshot(optimizer)
    assert groups == before[0], "a refused state must leave the options as they were"
    assert state.keys() == before[1].keys()
    for position, entry in before[1].items():
        for key, value in entry.items():
            np.testing.assert_array_equal(state[position][key], value)


@pytest.mark.parametrize("option,value,message", [
    ("lr", -5.0, "lr must be >= 0, got -5.0"),
    ("lr", "abc", "lr must be >= 0, got 'abc'"),
    ("lr", math.inf, "lr must be a finite number, got inf"),
    ("lr", math.nan, "lr must be a finite number, got nan"),
    ("eps", -1.0, "eps must be >= 0"),
    ("betas", (0.9, 1.5), "betas[1] must be in [0, 1)"),
    ("betas", 0.9, "betas must be a pair"),
    ("amsgrad", "false", "amsgrad must be True or False"),
])
def test_load_state_dict_applies_the_constructors_checks(option, value, message):
    optimizer = stepped(lambda p: Adam(p, lr=0.01))
    before = optimizer_snapshot(optimizer)
    edited = optimizer.state_dict()
    edited["param_groups"][0][option] = value
    with pytest.raises(ValueError) as error:
        optimizer.load_state_dict(edited)
    assert message in str(error.value) and "Adam.load_state_dict" in str(error.value)
    assert_unchanged(optimizer, before)


@pytest.mark.parametrize("make", [
    lambda p: SGD(p, lr=math.inf), lambda p: SGD(p, lr=0.1, momentum=math.nan),
    lambda p: Adam(p, eps=math.inf), lambda p: Adam(p, betas=(math.nan, 0.9)),
    lambda p: AdamW(p, weight_decay=math.inf), lambda p: RMSprop(p, alpha=math.nan),
    lambda p: SGD(p, lr=0.1, nesterov="yes"), lambda p: RMSprop(p, centered=1),
])
def test_non_finite_options_and_non_boolean_switches_are_refused(make):
    with pytest.raises(ValueError, match="must be a finite number|must be True or False"):
        make([Tensor([1.0], requires_grad=True)])


@pytest.mark.parametrize("saved_by,loaded_into,message", [
    (lambda p: SGD(p, lr=0.1, momentum=0.9), lambda p: Adam(p), "saved by 'SGD', not by Adam"),
    (lambda p: AdamW(p), lambda p: Adam(p), "saved by 'AdamW', not by Adam"),
    (lambda p: Adam(p), lambda p: RMSprop(p), "saved by 'Adam', not by RMSprop"),
])
def test_another_optimizers_state_is_refused_naming_both(saved_by, loaded_into, message):
    saved = stepped(saved_by).state_dict()
    target = stepped(loaded_into, seed=1)
    before = optimizer_snapshot(target)
    with pytest.raises(ValueError, match=message):
        target.load_state_dict(saved)
    assert_unchanged(target, before)


def test_a_state_without_its_kind_is_recognised_by_its_options():
    saved = stepped(lambda p: SGD(p, lr=0.1, momentum=0.9)).state_dict()
    del saved["kind"]  # as PyTorch and older checkpoints write it
    with pytest.raises(ValueError, match="lacks Adam's options amsgrad, betas.*another kind of optimizer"):
        Adam(float64_params()).load_state_dict(saved)


@pytest.mark.parametrize("edit,message", [
    (lambda s: s["state"][0].update(step="abc"), "'step' must be a whole number >= 0"),
    (lambda s: s["state"][0].update(step=-1), "'step' must be a whole number >= 0"),
    (lambda s: s["state"][0].update(exp_avg=s["state"][0]["exp_avg"].astype(np.complex128)), "complex128"),
    (lambda s: s["state"][0].update(exp_avg="zeros"), "'exp_avg' is 'zeros'"),
    (lambda s: s["state"][0].pop("exp_avg_sq"), "lacks exp_avg_sq"),
    (lambda s: s["state"].update({7: {}}), "names parameter 7"),
    (lambda s: s["param_groups"][0].update(params=[0, 0, 1]), "once each"),
    (lambda s: s.update(state=[1, 2]), "another layout"),
    (lambda s: s.pop("param_groups"), "another layout"),
])
def test_a_damaged_state_is_refused_and_changes_nothing(edit, message):
    optimizer = stepped(lambda p: Adam(p, lr=0.01))
    before = optimizer_snapshot(optimizer)
    saved = optimizer.state_dict()
    edit(saved)
    with pytest.raises(ValueError, match=message):
        optimizer.load_state_dict(saved)
    assert_unchanged(optimizer, before)


def test_zero_grad_sets_none_or_zeros():
    params = float64_params()
    optimizer = SGD(params, lr=0.1)
    for param in params:
        param.grad = np.ones(param.shape)
    optimizer.zero_grad(set_to_none=False)
    assert all(np.all(p.grad == 0) for p in params)
    optimizer.zero_grad()
    assert all(p.grad is None for p in params)


def test_step_calls_the_closure_and_returns_its_loss():
    param = Tensor([1.0], requires_grad=True)
    optimizer = SGD([param], lr=0.5)

    def closure():
        param.grad = np.array([2.0], dtype=np.float32)
        return 3.0

    assert optimizer.step(closure) == 3.0
    assert param.item() == 0.0


def test_works_with_module_parameters():
    model = Sequential(Linear(3, 4), Linear(4, 2))
    optimizer = Adam(model.parameters(), lr=0.1)
    assert len(optimizer.param_groups[0]["params"]) == 4
    before = model.state_dict()
    for param in model.parameters():
        param.grad = np.ones(param.shape, dtype=np.float32)
    optimizer.step()
    for name, array in model.state_dict().items():
        np.testing.assert_allclose(array, before[name] - 0.1, rtol=1e-5, atol=1e-6, err_msg=name)


def test_adamw_default_weight_decay_matches_torch():
    param = Tensor([1.0], requires_grad=True)
    assert AdamW([param]).param_groups[0]["weight_decay"] == 0.01
    assert Adam([param]).param_groups[0]["weight_decay"] == 0.0
    assert SGD([param]).param_groups[0]["lr"] == 1e-3 and RMSprop([param]).param_groups[0]["lr"] == 1e-2


def test_repr_lists_the_groups():
    text = repr(SGD([Tensor([1.0], requires_grad=True)], lr=0.1, momentum=0.9))
    assert text.startswith("SGD (") and "Parameter Group 0" in text and "momentum: 0.9" in text


# ---- errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize("make,message", [
    (lambda p: SGD(p, lr=-0.1), "SGD: lr must be >= 0, got -0.1"),
    (lambda p: SGD(p, lr=0.1, momentum=-0.5), "SGD: momentum must be >= 0, got -0.5"),
    (lambda p: SGD(p, lr=0.1, nesterov=True), "nesterov=True needs momentum > 0 and dampening = 0"),
    (lambda p: SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "dampening=0.1"),
    (lambda p: SGD(p, lr="fast"), "SGD: lr must be >= 0, got 'fast'"),
    (lambda p: Adam(p, lr=-1e-3), "Adam: lr must be >= 0, got -0.001"),
    (lambda p: Adam(p, betas=(1.5, 0.999)), "Adam: betas[0] must be in [0, 1), got 1.5"),
    (lambda p: Adam(p, betas=(0.9, 1.0)), "Adam: betas[1] must be in [0, 1), got 1.0"),
    (lambda p: Adam(p, betas=(0.9,)), "betas must be a pair"),
    (lambda p: Adam(p, eps=-1e-8), "Adam: eps must be >= 0"),
    (lambda p: AdamW(p, weight_decay=-0.01), "AdamW: weight_decay must be >= 0"),
    (lambda p: RMSprop(p, alpha=1.5), "RMSprop: alpha must be in [0, 1], got 1.5"),
    (lambda p: RMSprop(p, momentum=-0.1), "RMSprop: momentum must be >= 0"),
    (lambda p: SGD([{"params": p, "lr": -1.0}], lr=0.1), "SGD: lr must be >= 0, got -1.0"),
])
def test_bad_options_are_refused_with_the_option_and_value(make, message):
    with pytest.raises(ValueError) as error:
        make([Tensor([1.0], requires_grad=True)])
    assert message in str(error.value)


@pytest.mark.parametrize("make", [SGD, Adam, AdamW, RMSprop])
def test_an_empty_parameter_list_is_explained(make):
    with pytest.raises(ValueError) as error:
        make([])
    assert f"{make.__name__} got an empty parameter list" in str(error.value)
    assert "model.parameters()" in str(error.value)


def test_a_used_up_generator_is_explained():
    model = Linear(2, 2)
    params = model.parameters()
    SGD(params, lr=0.1)
    with pytest.raises(ValueError, match="a generator runs once"):
        SGD(params, lr=0.1)


def test_bad_parameters_are_refused():
    param = Tensor([1.0], requires_grad=True)
    with pytest.raises(TypeError, match="got a single Tensor; wrap it in a list"):
        SGD(param, lr=0.1)
    with pytest.raises(TypeError, match="only floating-point Tensors"):
        SGD([Tensor([1, 2])], lr=0.1)
    with pytest.raises(TypeError, match="only floating-point Tensors"):
        SGD([np.ones(2)], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        SGD([param, param], lr=0.1)
    with pytest.raises(TypeError, match="'params' entry"):
        SGD([{"lr": 0.1}], lr=0.1)


def test_a_gradient_of_the_wrong_shape_is_refused_before_broadcasting():
    param = Tensor(np.zeros((2, 3)), requires_grad=True)
    optimizer = SGD([param], lr=0.1)
    with pytest.raises(ValueError) as error:
        param.grad = np.ones(3)
    assert "(3,)" in str(error.value) and "(2, 3)" in str(error.value)
    optimizer.step()
    assert param.grad is None and np.all(param.numpy() == 0)


# ---- clip_grad_norm_ --------------------------------------------------------------------------------
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
def test_clip_grad_norm_matches_torch(torch, max_norm, norm_type):
    params = float64_params(6)
    reference = torch_copies(torch, params)
    set_gradients(torch, params, reference, np.random.default_rng(6))
    params.append(Tensor([1.0], dtype=np.float64, requires_grad=True))  # no gradient: skipped
    reference.append(torch.tensor([1.0], dtype=torch.float64, requires_grad=True))
    norm = clip_grad_norm_(params, max_norm, norm_type=norm_type)
    torch_norm = torch.nn.utils.clip_grad_norm_(reference, max_norm, norm_type=norm_type)
    assert isinstance(norm, Tensor) and norm.dtype == np.float64
    np.testing.assert_allclose(norm.item(), torch_norm.item(), rtol=1e-12)
    for mine, theirs in zip(params[:-1], reference[:-1]):
        np.testing.assert_allclose(mine.grad, theirs.grad.numpy(), rtol=1e-12, atol=1e-15)
    assert params[-1].grad is None


def test_clip_grad_norm_scales_in_place_and_keeps_the_direction():
    param = Tensor(np.zeros(2), requires_grad=True)
    gradient = np.array([3.0, 4.0], dtype=np.float32)
    param.grad = gradient
    norm = clip_grad_norm_(param, max_norm=1.0)
    assert param.grad.data is gradient, "clipping rescales the gradient where it is"
    assert np.isclose(norm.item(), 5.0)
    np.testing.assert_allclose(gradient, [0.6, 0.8], rtol=1e-5)
    assert clip_grad_norm_([Tensor([1.0], requires_grad=True)], 1.0).item() == 0.0
    with pytest.raises(ValueError, match="max_norm must be >= 0"):
        clip_grad_norm_(param, -1.0)


# ---- learning-rate schedules ------------------------------------------------------------------------
def lr_sequence(scheduler, optimizer, steps):
    rates = []
    for _ in range(steps):
        rates.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return np.array(rates)


def two_group_optimizers(torch):
    params = float64_params()
    reference = torch_copies(torch, params)
    mine = SGD([{"params": params[:1]}, {"params": params[1:], "lr": 0.02}], lr=0.1, momentum=0.9)
    theirs = torch.optim.SGD([{"params": reference[:1]}, {"params": reference[1:], "lr": 0.02}], lr=0.1, momentum=0.9)
    return mine, theirs


@pytest.mark.parametrize("name,options,steps", [
    ("StepLR", {"step_size": 3, "gamma": 0.5}, 12),
    ("StepLR", {"step_size": 1, "gamma": 0.9}, 10),
    ("CosineAnnealingLR", {"T_max": 10}, 35),
    ("CosineAnnealingLR", {"T_max": 7, "eta_min": 0.001}, 30),
    ("LambdaLR", {"lr_lambda": lambda step: 1 / (1 + step)}, 10),
])
def test_scheduler_matches_torch(torch, name, options, steps):
    mine, theirs = two_group_optimizers(torch)
    ours_rates = lr_sequence(getattr(ours, name)(mine, **options), mine, steps)
    torch_rates = lr_sequence(getattr(torch.optim.lr_scheduler, name)(theirs, **options), theirs, steps)
    np.testing.assert_allclose(ours_rates, torch_rates, rtol=1e-10, atol=1e-15)


def test_cosine_warmup_matches_torch_linear_then_cosine(torch):
    warmup, total, min_lr = 5, 20, 0.001
    mine, theirs = two_group_optimizers(torch)
    scheduler = CosineWarmupLR(mine, warmup_steps=warmup, total_steps=total, min_lr=min_lr)
    ours_rates = lr_sequence(scheduler, mine, total + 1)
    schedulers = [
        torch.optim.lr_scheduler.LinearLR(theirs, start_factor=1 / warmup, end_factor=1.0, total_iters=warmup - 1),
        torch.optim.lr_scheduler.CosineAnnealingLR(theirs, T_max=total - warmup, eta_min=min_lr),
    ]
    sequential = torch.optim.lr_scheduler.SequentialLR(theirs, schedulers, milestones=[warmup])
    torch_rates = lr_sequence(sequential, theirs, total + 1)
    np.testing.assert_allclose(ours_rates, torch_rates, rtol=1e-10, atol=1e-15)


def test_cosine_warmup_shape():
    optimizer = SGD([Tensor([1.0], requires_grad=True)], lr=1.0)
    scheduler = CosineWarmupLR(optimizer, warmup_steps=10, total_steps=110, min_lr=0.1)
    rates = lr_sequence(scheduler, optimizer, 130)[:, 0]
    np.testing.assert_allclose(rates[:10], np.arange(1, 11) / 10)
    assert np.all(np.diff(rates[10:111]) <= 0), "after warmup the rate only decreases"
    np.testing.assert_allclose(rates[60], 0.1 + 0.9 / 2)
    np.testing.assert_allclose(rates[110:], 0.1)
    assert scheduler.get_last_lr() == [optimizer.param_groups[0]["lr"]]


def test_scheduler_state_dict_round_trip():
    optimizer = SGD([Tensor([1.0], requires_grad=True)], lr=1.0)
    scheduler = StepLR(optimizer, step_size=2, gamma=0.5)
    for _ in range(5):
        scheduler.step()
    saved = scheduler.state_dict()
    other_optimizer = SGD([Tensor([1.0], requires_grad=True)], lr=1.0)
    other = StepLR(other_optimizer, step_size=2, gamma=0.5)
    other.load_state_dict(saved)
    assert other_optimizer.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"] == 0.25
    scheduler.step()
    other.step()
    assert other.get_last_lr() == scheduler.get_last_lr() == [0.125]


@pytest.mark.parametrize("edit,message", [
    (lambda s: s.update(kind="CosineAnnealingLR"), "saved by 'CosineAnnealingLR', not by StepLR"),
    (lambda s: s.update(last_epoch="x"), "last_epoch must be an integer >= -1, got 'x'"),
    (lambda s: s.update(base_lrs=[1.0, 2.0]), "base_lrs must be a list of one rate per parameter group \\(1 here\\)"),
    (lambda s: s.update(base_lrs=[math.inf]), "base_lrs\\[0\\] must be a finite number"),
    (lambda s: s.pop("base_lrs"), "base_lrs must be a list"),
])
def test_scheduler_load_state_dict_checks_first_and_changes_nothing(edit, message):
    optimizer = SGD([Tensor([1.0], requires_grad=True)], lr=1.0)
    scheduler = StepLR(optimizer, step_size=2, gamma=0.5)
    scheduler.step()
    saved = scheduler.state_dict()
    edit(saved)
    with pytest.raises(ValueError, match=message):
        scheduler.load_state_dict(saved)
    assert scheduler.last_epoch == 1 and scheduler.base_lrs == [1.0] and optimizer.param_groups[0]["lr"] == 1.0


def test_scheduler_options_must_be_finite():
    optimizer = SGD([Tensor([1.0], requires_grad=True)], lr=1.0)
    with pytest.raises(ValueError, match="gamma must be a finite number"):
        StepLR(optimizer, step_size=1, gamma=math.nan)
    with pytest.raises(ValueError, match="eta_min must be >= 0"):
        CosineAnnealingLR(optimizer, T_max=5, eta_min=-1.0)


def test_scheduler_errors():
    optimizer = SGD([Tensor([1.0], requires_grad=True)], lr=1.0)
    with pytest.raises(ValueError, match="StepLR: step_size must be an integer >= 1, got 0"):
        StepLR(optimizer, step_size=0)
    with pytest.raises(ValueError, match="CosineAnnealingLR: T_max must be an integer >= 1"):
        CosineAnnealingLR(optimizer, T_max=2.5)
    with pytest.raises(ValueError, match="total_steps must be an integer >= 11, got 10"):
        CosineWarmupLR(optimizer, warmup_steps=10, total_steps=10)
    with pytest.raises(ValueError, match="LambdaLR: got 2 functions for 1 parameter groups"):
        LambdaLR(optimizer, [lambda s: 1.0, lambda s: 0.5])
    with pytest.raises(TypeError, match="must be an Optimizer"):
        StepLR("not an optimizer", step_size=1)


# ---- an optimizer step changes parameters in place: the version counter (module 01/05) ----
def test_an_optimizer_step_between_forward_and_backward_is_refused():
    w = Tensor([1.0, -1.0], requires_grad=True)
    optimizer = SGD([w], lr=0.1)
    first = (w * w).sum()
    first.backward()
    second = (w * w * 3.0).sum()
    optimizer.step()  # changes w in place: `second` was computed from the old w
    with pytest.raises(RuntimeError, match="optimizer step belongs after backward"):
        second.backward()
    optimizer.zero_grad()
    (w * w).sum().backward()  # a fresh forward pass is fine
    np.testing.assert_allclose(w.grad.numpy(), 2 * w.numpy())
