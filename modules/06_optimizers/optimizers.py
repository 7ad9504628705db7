# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Module 06: Optimizers
#
# *Can I turn gradients into better parameters?*
#
# Module 05 tells every parameter which way is uphill: `param.grad`. An **optimizer** decides
# how far to step the other way, and how to use what it saw on earlier steps. The choice
# matters as much as the model: the same network can train in minutes with Adam and stall
# for hours with badly tuned SGD. In this module you build the four optimizers that train most
# of the world's networks, the learning-rate schedules that steer them, and gradient clipping
# that keeps them from blowing up — each following PyTorch's update equations to the last
# rounding, so that a recipe tuned in PyTorch works here unchanged.
#
# ## Learning objectives
# - Implement `SGD` (momentum, dampening, Nesterov, weight decay), `Adam` (with AMSGrad),
#   `AdamW` and `RMSprop` exactly as PyTorch defines them, updating parameters in place.
# - Organise parameters in **groups** with their own options (a smaller learning rate for a
#   pretrained backbone), and save and restore an optimizer so that training resumes exactly.
# - Implement learning-rate schedules (`StepLR`, `CosineAnnealingLR`, cosine with warmup,
#   `LambdaLR`) and `clip_grad_norm_`.
# - Measure what an optimizer costs: state memory in bytes (Adam: three times the parameters)
#   and milliseconds per step.
#
# ## How to work through this module
# Each step below has a short explanation, a code cell with `### BEGIN SOLUTION` /
# `### END SOLUTION` (in your edition: a `raise NotImplementedError` to replace), and a test cell
# right after it. Run the test cell; when it passes, move on. You do not need module 05 here:
# the tests set `param.grad` by hand — a NumPy array of the parameter's shape, which the
# parameter keeps as a Tensor — exactly where module 05's `backward()` will put it. When every step passes:
#
# ```
# tito module complete 06
# ```
#
# exports your code to `tinytorch/core/optimizers.py` and grades it with
# `tests/modules/test_06_optimizers.py`.

# %% [markdown]
# ## Mathematical foundations
#
# Write $\theta$ for a parameter, $g_t$ for its gradient at step $t$, $\eta$ for the learning
# rate and $\lambda$ for the weight decay. Each optimizer below is written the way PyTorch
# computes it.
#
# **SGD** steps against the gradient: $\theta \leftarrow \theta - \eta g_t$. With weight decay
# the gradient first becomes $g_t + \lambda\theta$ (the gradient of an extra
# $\frac{\lambda}{2}\|\theta\|^2$ in the loss). **Momentum** $\mu$ keeps a running direction
# $b$ (with dampening $\tau$, usually 0):
#
# $$b_1 = g_1, \qquad b_t = \mu b_{t-1} + (1-\tau) g_t, \qquad
# \theta \leftarrow \theta - \eta\, b_t \quad\text{or, with Nesterov,}\quad
# \theta \leftarrow \theta - \eta\,(g_t + \mu b_t).$$
#
# A consistent gradient adds up: with $\mu = 0.9$ the step grows towards $10\eta g$, while
# gradients that flip sign cancel. Nesterov looks one momentum step ahead.
#
# **Adam** (Kingma & Ba, 2015) keeps two running averages per parameter, of the gradient and of
# its square, corrects their start-up bias towards zero, and divides:
#
# $$m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,$$
# $$\theta \leftarrow \theta - \frac{\eta}{1-\beta_1^t}\cdot
# \frac{m_t}{\sqrt{v_t}\,/\sqrt{1-\beta_2^t} + \epsilon}.$$
#
# Dividing by $\sqrt{v_t}$ gives every parameter its own step size: about $\eta$ whatever the
# scale of its gradient. **AMSGrad** (Reddi et al., 2018) divides by the largest $v$ seen so far
# instead of $v_t$, so the effective step never grows.
#
# **AdamW** (Loshchilov & Hutter, 2019) decays the weights *outside* the adaptive step:
# $\theta \leftarrow \theta(1 - \eta\lambda)$, then the Adam update without $\lambda\theta$ in the
# gradient. In Adam's `weight_decay`, $\lambda\theta$ is divided by $\sqrt{v_t}$ like the rest of
# the gradient, so the weights with the largest gradients are decayed least — not what weight
# decay is for. AdamW is the default for transformers.
#
# **RMSprop** (Hinton, 2012) is Adam's ancestor, without the first moment or bias correction:
# $v_t = \alpha v_{t-1} + (1-\alpha) g_t^2$ and $\theta \leftarrow \theta - \eta\, g_t / (\sqrt{v_t} + \epsilon)$.
# *Centered* RMSprop divides by an estimate of the variance instead,
# $\sqrt{v_t - \bar g_t^2}$ with $\bar g_t = \alpha \bar g_{t-1} + (1-\alpha) g_t$; with momentum,
# $b_t = \mu b_{t-1} + g_t / (\sqrt{v_t} + \epsilon)$ and $\theta \leftarrow \theta - \eta b_t$.
#
# | optimizer | state per parameter | memory with the parameters |
# |---|---|---|
# | SGD | none | 1x |
# | SGD with momentum | $b$ | 2x |
# | RMSprop | $v$ (+ $b$ with momentum, + $\bar g$ centered) | 2x to 4x |
# | Adam / AdamW | $m$, $v$ (+ $\max v$ with AMSGrad) | 3x (4x) |
#
# **Schedules** change $\eta$ as training goes, as a function of the step count $t$ and the
# starting rate $\eta_0$: step decay $\eta_0\gamma^{\lfloor t/s\rfloor}$; cosine annealing
# $\eta_{min} + (\eta_0 - \eta_{min})\frac{1 + \cos(\pi t/T)}{2}$; warmup, which rises linearly
# for the first steps while Adam's $v$ estimates are still noisy, then follows the cosine.
#
# **Gradient clipping** rescales all gradients together when their combined norm
# $\|g\| = \sqrt{\sum_i \|g_i\|^2}$ exceeds a limit $c$: $g_i \leftarrow g_i \cdot c / (\|g\| + 10^{-6})$.
# The direction is kept; one bad batch cannot throw the parameters far away.

# %%
#| export
import math
import numbers

import numpy as np

from tinytorch.core.tensor import Tensor, backend_kernel

# %% [markdown]
# ## Step 1: the Optimizer base class
#
# Every optimizer shares the bookkeeping; only the update rule differs. The base class holds:
#
# - `param_groups`: a list of dicts, each with `"params"` (a list of parameters) and the options
#   (`lr`, `momentum`, ...). `SGD(model.parameters(), lr=0.1)` makes one group; PyTorch's other
#   form, `SGD([{"params": backbone, "lr": 1e-4}, {"params": head}], lr=1e-2)`, makes one group
#   per dict, and options a dict leaves out come from the constructor (`defaults`).
# - `state`: a dict from each parameter to *its* state (Adam's $m$ and $v$), created at the
#   parameter's first step. A dict keyed by the parameter object works because tensors hash by
#   identity.
#
# `step()` walks the groups, skips parameters without a gradient (a frozen layer, or a layer the
# loss did not reach), checks the gradient's shape, and calls the subclass's `_update` on the
# raw NumPy arrays. Checking the shape matters: NumPy would happily *broadcast* a gradient of
# shape `(3,)` over a parameter of shape `(2, 3)` and corrupt it silently.
#
# `step()` also puts each gradient in row-major (C) order, the parameters' order. The gradient
# of a Linear weight arrives *transposed* (Linear computes `x @ W.T`, so module 05 hands back the
# transpose of a row-major array): an elementwise operation between a transposed array and a
# row-major one reads one of them with a stride of a whole row, and on a 256x784 weight each such
# pass is about ten times slower than a row-major one. Adam makes five of them; one reordering
# copy up front is cheaper than all five.
#
# `state_dict()` follows PyTorch's format, so that a checkpoint can be saved with the model's:
# parameters are replaced by their position (0, 1, 2, ... over all groups), because parameter
# objects cannot be saved, and arrays are copied. It adds one entry, `"kind"` (the class name),
# so that an SGD state loaded into an Adam is refused by name instead of half-working.
#
# A state to load may come from a file that was edited, damaged or written by another program, so
# `load_state_dict` trusts nothing: `check_state_dict` first checks the kind, the groups, every
# option (with the constructor's own checks: `lr=-5.0`, `lr="abc"` and `lr=inf` are refused
# from a file as from your code) and every state array, and only then does anything change. A
# refused state leaves the optimizer exactly as it was. Module 07 relies on that split: it checks
# the model, the optimizer and the scheduler of a checkpoint before it loads any of them.

# %%
#| export
def _check_option(owner, name, value, low=0.0, high=None, high_open=False):
    """A clear error when an option is not a finite number >= low (or in [low, high], or [low, high))."""
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if number and not math.isfinite(value):  # inf >= 0 holds, and one inf step turns every weight into NaN
        raise ValueError(f"{owner}: {name} must be a finite number, got {value!r}")
    if high is None:
        inside, expected = number and value >= low, f">= {low:g}"
    else:
        inside = number and low <= value and (value < high if high_open else value <= high)
        expected = f"in [{low:g}, {high:g}{')' if high_open else ']'}"
    if not inside:
        raise ValueError(f"{owner}: {name} must be {expected}, got {value!r}")


def _check_flag(owner, name, value):
    """A clear error when a switch is not True or False (the string "false" would count as True)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{owner}: {name} must be True or False, got {value!r}")


def _check_kind(owner, state_dict):
    """A clear error when `state_dict` is not a dict saved by an object of the class `owner`."""
    if not isinstance(state_dict, dict):
        raise ValueError(f"{owner}.load_state_dict: expects a dict, as state_dict() returns, got {type(state_dict).__name__}")
    saved = state_dict.get("kind", owner)  # states saved before the kind was recorded carry none
    if not isinstance(saved, str) or saved != owner:
        raise ValueError(
            f"{owner}.load_state_dict: this state was saved by {saved!r}, not by {owner}; build the "
            f"{saved} that the saved run used, or do not load this state and let the {owner} start afresh"
        )


def _is_step_count(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and value >= 0 and float(value).is_integer()


def _check_positions(owner, saved_groups, saved_state):
    """A clear error unless the groups number their parameters 0, 1, 2, ... once each and the state uses those numbers."""
    positions = [position for group in saved_groups for position in group["params"]]
    if not all(type(p) is int for p in positions) or sorted(positions) != list(range(len(positions))):
        raise ValueError(
            f"{owner}.load_state_dict: the groups' 'params' must number the parameters 0, 1, 2, ... once each, "
            f"got {positions[:10]}{' ...' if len(positions) > 10 else ''}"
        )
    names = {str(position) for position in positions}  # a JSON round trip may have made the keys strings
    for position in saved_state:
        if type(position) not in (int, str) or str(position) not in names:
            raise ValueError(f"{owner}.load_state_dict: the state names parameter {position!r}, which no group holds")


class Optimizer:
    """Base class of optimizers: parameter groups, per-parameter state, zero_grad, state_dict."""

    def __init__(self, params, defaults):
        name = type(self).__name__
        if isinstance(params, (Tensor, dict)):
            raise TypeError(
                f"{name}: params must be an iterable of parameters (e.g. model.parameters()) or of "
                f"parameter-group dicts, got a single {type(params).__name__}; wrap it in a list"
            )
        params = list(params)
        if not params:
            raise ValueError(
                f"{name} got an empty parameter list; pass model.parameters() of a model that has "
                "parameters (a generator runs once: call model.parameters() again rather than reusing it)"
            )
        self.defaults = dict(defaults)
        self.param_groups = []
        self.state = {}  # parameter -> {name: value}, filled at the parameter's first step
        for group in params if isinstance(params[0], dict) else [{"params": params}]:
            self.add_param_group(group)

    def add_param_group(self, group):
        """Add a dict {"params": [...], option: value, ...}; options it omits take the defaults.

        TODO: copy `group`, turn its "params" into a list, check that each is a floating-point
              Tensor not already in another group, fill in the missing options from
              `self.defaults`, validate them with `self._check_options(group)`, and append.
        HINT: `dict.setdefault(key, value)` fills a missing option. Compare parameters by `id`.
        """
        name = type(self).__name__
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"{name}: a parameter group must be a dict with a 'params' entry, got {group!r}")
        ### BEGIN SOLUTION
        group = dict(group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, Tensor) else list(params)
        taken = {id(p) for other in self.param_groups for p in other["params"]}
        for position, param in enumerate(group["params"]):
            if not isinstance(param, Tensor) or param.dtype.kind != "f":
                raise TypeError(
                    f"{name}: parameter {position} of group {len(self.param_groups)} is "
                    f"{type(param).__name__} {getattr(param, 'dtype', '')}; "
                    "only floating-point Tensors can be optimized"
                )
            if id(param) in taken:
                raise ValueError(f"{name}: a parameter appears in more than one parameter group (or twice in one)")
            taken.add(id(param))
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._check_options(group)
        self.param_groups.append(group)
        ### END SOLUTION

    def _check_options(self, group):
        """Subclasses raise a clear ValueError for an option out of range."""

    def zero_grad(self, set_to_none=True):
        """Forget the gradients: set them to None (PyTorch's default), or fill them with zeros."""
        for group in self.param_groups:
            for param in group["params"]:
                if set_to_none:
                    param.grad = None
                elif param.grad is not None:
                    param.grad.zero_()

    def step(self, closure=None):
        """Update every parameter that has a gradient; returns closure() when one is given."""
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad.data  # the parameter's grad setter checked its shape
                # A transposed gradient (a weight's, from x @ W.T) would make every operation below
                # read memory with large strides; one reordering copy makes all of them fast.
                if not grad.flags.c_contiguous:
                    grad = grad.copy(order="C")
                self._update(param.data, grad, self.state.setdefault(param, {}), group)
                # The update wrote into param.data: a graph recorded before it is now stale, and
                # module 05's backward() refuses it instead of computing wrong gradients.
                param.mark_modified()
        return loss

    def _update(self, param, grad, state, group):
        """Update the array `param` in place from `grad`, `state` (this parameter's) and `group`."""
        raise NotImplementedError(f"{type(self).__name__} must define _update(param, grad, state, group)")

    def state_dict(self):
        """{"kind": class name, "state": {position: {name: copy}}, "param_groups": [options with "params": positions]}.

        TODO: number the parameters 0, 1, 2, ... in group order; copy each group's options with
              "params" replaced by the positions; copy each parameter's state (arrays copied)
              under its position.
        HINT: a dict from `id(param)` to its position does the numbering.
        """
        ### BEGIN SOLUTION
        position = {}
        groups = []
        for group in self.param_groups:
            saved = {key: value for key, value in group.items() if key != "params"}
            saved["params"] = [position.setdefault(id(p), len(position)) for p in group["params"]]
            groups.append(saved)
        state = {
            position[id(param)]: {key: np.copy(value) if isinstance(value, np.ndarray) else value
                                  for key, value in entry.items()}
            for param, entry in self.state.items()
        }
        return {"kind": type(self).__name__, "state": state, "param_groups": groups}
        ### END SOLUTION

    def check_state_dict(self, state_dict):
        """Check that `state_dict` fits this optimizer, changing nothing: returns (state, options).

        `state` maps each parameter to its saved entry, `options` holds each group's saved
        options. The state must come from the same kind of optimizer, with the same numbers of
        groups and of parameters per group, options that the constructor would accept, and state
        arrays of each parameter's shape. `load_state_dict` calls it before it changes anything.

        TODO: check that the numbers of parameters per group match and map each saved position to
              this optimizer's parameter; check each entry of the saved state with
              `self._check_entry(position, entry, param, options)`, the options of its group.
        HINT: `int(position)` also accepts positions that a JSON round trip turned into strings.
        """
        name = type(self).__name__
        _check_kind(name, state_dict)
        saved_groups, saved_state = state_dict.get("param_groups"), state_dict.get("state")
        if not (isinstance(saved_groups, list) and all(isinstance(g, dict) and isinstance(g.get("params"), list)
                                                       for g in saved_groups) and isinstance(saved_state, dict)):
            raise ValueError(
                f"{name}.load_state_dict: expects {{'state': {{position: {{...}}}}, 'param_groups': [{{'params': "
                "[positions], option: value}]}, as state_dict() returns; this state has another layout"
            )
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{name}.load_state_dict: the checkpoint has {len(saved_groups)} parameter group(s), "
                f"this optimizer {len(self.param_groups)}; build the optimizer the way the checkpoint's was built"
            )
        options = [self._checked_options(index, saved) for index, saved in enumerate(saved_groups)]
        _check_positions(name, saved_groups, saved_state)
        ### BEGIN SOLUTION
        params_at, options_at = {}, {}
        for index, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"{name}.load_state_dict: group {index} has {len(saved['params'])} parameters in the "
                    f"checkpoint but {len(group['params'])} here"
                )
            params_at.update(zip(saved["params"], group["params"]))
            options_at.update((position, options[index]) for position in saved["params"])
        state = {}
        for position, entry in saved_state.items():
            param = params_at[int(position)]
            self._check_entry(position, entry, param, options_at[int(position)])
            state[param] = entry
        ### END SOLUTION
        return state, options

    def _checked_options(self, index, saved):
        """The options of saved group `index` that this optimizer knows, checked as the constructor checks them."""
        name = type(self).__name__
        missing = sorted(set(self.defaults) - set(saved))
        if missing:
            theirs = ", ".join(sorted(str(key) for key in saved if key != "params"))
            raise ValueError(
                f"{name}.load_state_dict: group {index} of this state lacks {name}'s options {', '.join(missing)}; "
                f"it was saved by another kind of optimizer (its options: {theirs})"
            )
        known = {key: saved[key] for key in (*self.defaults, "initial_lr") if key in saved}
        try:
            self._check_options({**self.param_groups[index], **known})
            if "initial_lr" in known:  # a scheduler's base rate
                _check_option(name, "initial_lr", known["initial_lr"])
        except ValueError as error:
            raise ValueError(f"{name}.load_state_dict: group {index} of this state has an option that the "
                             f"constructor refuses ({error}); nothing was loaded") from None
        return known

    def _check_entry(self, position, entry, param, options):
        """A clear error unless `entry` is a state that `step()` can continue from, for `param` with `options`."""
        name = type(self).__name__
        where = f"{name}.load_state_dict: the state of parameter {position}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where} must be a dict {{name: value}}, got {type(entry).__name__}")
        if entry:  # an empty entry is a parameter that has not stepped yet; step() creates its state
            missing = [key for key in self._state_names(options) if key not in entry]
            if missing:
                raise ValueError(f"{where} lacks {', '.join(missing)}; it is incomplete, or saved with other options")
        for key, value in entry.items():
            if isinstance(value, np.ndarray):
                if value.shape != param.shape:
                    raise ValueError(
                        f"{where}: '{key}' has shape {value.shape} but the parameter has shape {param.shape}"
                    )
                if not np.can_cast(value.dtype, param.dtype, "same_kind"):
                    raise ValueError(f"{where}: '{key}' is {value.dtype}, which a {param.dtype} parameter cannot use")
            elif key == "step" and not _is_step_count(value):
                raise ValueError(f"{where}: 'step' must be a whole number >= 0, got {value!r}")
            elif not (value is None or isinstance(value, numbers.Real)):
                raise ValueError(f"{where}: '{key}' is {value!r}; a state holds arrays and numbers")

    def _state_names(self, group):
        """The state entries a parameter holds after its first step with `group`'s options (subclasses)."""
        return ()

    def load_state_dict(self, state_dict):
        """Restore options and state saved by state_dict(); everything is checked before anything changes."""
        state, options = self.check_state_dict(state_dict)
        # astype copies: training on must not change the state that was loaded
        self.state = {param: {key: value.astype(param.dtype) if isinstance(value, np.ndarray) else value
                              for key, value in entry.items()}
                      for param, entry in state.items()}
        for group, saved in zip(self.param_groups, options):
            group.update(saved)

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for index, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {index}")
            lines += [f"    {key}: {group[key]}" for key in sorted(group) if key != "params"]
        return "\n".join(lines) + "\n)"

# %% [markdown]
# ### Test: groups, zero_grad and errors
#
# The base class cannot step (it has no update rule), but its bookkeeping can be tested with a
# tiny optimizer that adds a constant: `_update` is the only thing a subclass must write.

# %%
class _AddOne(Optimizer):
    def __init__(self, params, lr=1.0):
        super().__init__(params, {"lr": lr})

    def _check_options(self, group):
        _check_option("_AddOne", "lr", group["lr"])

    def _update(self, param, grad, state, group):
        state["calls"] = state.get("calls", 0) + 1
        param += group["lr"]


def test_unit_optimizer_base():
    a, b = Tensor([0.0, 0.0], requires_grad=True), Tensor([0.0], requires_grad=True)
    optimizer = _AddOne([{"params": [a]}, {"params": [b], "lr": 5.0}], lr=2.0)
    assert [g["lr"] for g in optimizer.param_groups] == [2.0, 5.0], "a group's own option wins"
    a.grad, b.grad = np.ones(2), None
    optimizer.step()
    assert a.numpy().tolist() == [2.0, 2.0] and b.numpy().tolist() == [0.0], "no gradient: no update"
    saved = optimizer.state_dict()
    assert saved["param_groups"][1]["params"] == [1] and saved["state"] == {0: {"calls": 1}}
    optimizer.zero_grad()
    assert a.grad is None
    try:
        _AddOne([])
        raise AssertionError("an empty parameter list must be refused")
    except ValueError as error:
        assert "empty parameter list" in str(error)
    try:
        _AddOne([{"params": [a]}, {"params": [a]}])
        raise AssertionError("a parameter in two groups must be refused")
    except ValueError as error:
        assert "more than one parameter group" in str(error)
    for bad in (-5.0, "abc", float("inf")):
        edited = optimizer.state_dict()
        edited["param_groups"][0]["lr"] = bad
        try:
            optimizer.load_state_dict(edited)
            raise AssertionError(f"a saved lr={bad!r} must be refused like the constructor refuses it")
        except ValueError as error:
            assert "lr must be" in str(error) and repr(bad) in str(error)
    assert [g["lr"] for g in optimizer.param_groups] == [2.0, 5.0], "a refused state changes nothing"
    try:
        optimizer.load_state_dict({**saved, "kind": "SGD"})
        raise AssertionError("another optimizer's state must be refused")
    except ValueError as error:
        assert "'SGD'" in str(error) and "_AddOne" in str(error)
    ### BEGIN HIDDEN TESTS
    try:
        _AddOne([a], lr=-1.0)
        raise AssertionError("a negative learning rate must be refused")
    except ValueError as error:
        assert "lr must be >= 0, got -1.0" in str(error)
    try:
        a.grad = np.ones(3)
        raise AssertionError("a gradient of the wrong shape must be refused")
    except ValueError as error:
        assert "(3,)" in str(error) and "(2,)" in str(error)
    ### END HIDDEN TESTS
    print("Optimizer base: ok")


test_unit_optimizer_base()

# %% [markdown]
# ## Step 2: SGD
#
# Every update is **in place** on `param`, the NumPy array inside the parameter: the model, the
# optimizer and any view of the weights keep pointing at the same memory, and no new array is
# allocated for the weights. Two rules keep it correct and fast:
#
# - Never write into `grad`: it is the parameter's `.grad`, which the caller may still read.
#   With weight decay, `grad + weight_decay * param` is a new array.
# - Update state arrays in place (`buffer *= momentum`), so that each step reuses their memory.
#
# The first momentum step copies the gradient into the buffer ($b_1 = g_1$): PyTorch does not
# dampen the first step, and we follow it exactly.

# %%
#| export
class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, dampening, Nesterov and weight decay."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening,
                    "weight_decay": weight_decay, "nesterov": nesterov}
        super().__init__(params, defaults)

    def _check_options(self, group):
        for name in ("lr", "momentum", "dampening", "weight_decay"):
            _check_option("SGD", name, group[name])
        _check_flag("SGD", "nesterov", group["nesterov"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                f"SGD: nesterov=True needs momentum > 0 and dampening = 0, got momentum={group['momentum']} "
                f"and dampening={group['dampening']}"
            )

    def _update(self, param, grad, state, group):
        """One SGD step on the array `param`, in place.

        TODO: add weight decay to the gradient (as a new array), apply momentum to
              state["momentum_buffer"] (created as a copy of the gradient at the first step),
              use the Nesterov direction when asked, then param -= lr * direction.
        HINT: `np.array(grad, dtype=param.dtype)` is a copy in the parameter's dtype.
        """
        ### BEGIN SOLUTION
        momentum, weight_decay = group["momentum"], group["weight_decay"]
        if weight_decay != 0:
            grad = grad + weight_decay * param
        if momentum != 0:
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = state["momentum_buffer"] = np.array(grad, dtype=param.dtype)
            else:
                buffer *= momentum
                if group["dampening"] == 0:
                    buffer += grad
                else:
                    buffer += (1 - group["dampening"]) * grad
            grad = grad + momentum * buffer if group["nesterov"] else buffer
        param -= group["lr"] * grad
        ### END SOLUTION

# %% [markdown]
# ### Test: SGD by hand
#
# A quadratic bowl $f(\theta) = \frac12\theta^2$ has gradient $\theta$. Plain SGD with
# $\eta = 0.1$ multiplies $\theta$ by 0.9 per step. With momentum 0.9 and a constant gradient of
# 1, the buffer is 1, then 1.9, then 2.71: the steps grow.

# %%
def test_unit_sgd():
    theta = Tensor([1.0], requires_grad=True)
    optimizer = SGD([theta], lr=0.1)
    for _ in range(3):
        theta.grad = theta.numpy().copy()
        optimizer.step()
    assert np.isclose(theta.item(), 0.9 ** 3)

    weight = Tensor([0.0], requires_grad=True)
    optimizer = SGD([weight], lr=1.0, momentum=0.9)
    for _ in range(3):
        weight.grad = np.ones(1, dtype=np.float32)
        optimizer.step()
    assert np.isclose(weight.item(), -(1 + 1.9 + 2.71)), weight.item()
    assert np.isclose(optimizer.state[weight]["momentum_buffer"][0], 2.71)
    ### BEGIN HIDDEN TESTS
    decayed = Tensor([2.0], requires_grad=True)
    decayed.grad = np.zeros(1, dtype=np.float32)
    SGD([decayed], lr=0.1, weight_decay=0.5).step()
    assert np.isclose(decayed.item(), 2.0 - 0.1 * 0.5 * 2.0)
    assert decayed.grad[0] == 0.0, "weight decay must not write into the gradient"
    try:
        SGD([decayed], lr=0.1, nesterov=True)
        raise AssertionError("Nesterov without momentum must be refused")
    except ValueError as error:
        assert "momentum > 0" in str(error)
    ### END HIDDEN TESTS
    print("SGD: ok")


test_unit_sgd()

# %% [markdown]
# ## Step 3: Adam (and AMSGrad)
#
# Adam's step reads and writes the parameter and both moments once each. To stay fast, it
# allocates **one** scratch array per parameter and step and does every intermediate in it with
# NumPy's `out=` argument: $(1-\beta_1)g$, then $(1-\beta_2)g^2$, then the denominator
# $\sqrt{v}/\sqrt{1-\beta_2^t} + \epsilon$, then the step itself. The bias corrections are
# Python floats computed once per parameter.
#
# `state["step"]` counts the steps of *this* parameter (PyTorch keeps it per parameter too: a
# parameter that first receives a gradient at step 100 starts its bias correction from 1).

# %%
#| export
class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), with AMSGrad and, for AdamW, decoupled weight decay."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                 decoupled_weight_decay=False):
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                    "amsgrad": amsgrad, "decoupled_weight_decay": decoupled_weight_decay}
        super().__init__(params, defaults)

    def _check_options(self, group):
        name = type(self).__name__
        for option in ("lr", "eps", "weight_decay"):
            _check_option(name, option, group[option])
        for flag in ("amsgrad", "decoupled_weight_decay"):
            _check_flag(name, flag, group[flag])
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}")
        for index, beta in enumerate(betas):
            _check_option(name, f"betas[{index}]", beta, 0.0, 1.0, high_open=True)

    def _state_names(self, group):
        return ("step", "exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ())

    def _update(self, param, grad, state, group):
        """One Adam step on the array `param`, in place.

        TODO: create state (step 0, exp_avg and exp_avg_sq zeros, max_exp_avg_sq with amsgrad) at
              the first step; count the step; apply weight decay (decoupled: param *= 1 - lr * wd;
              otherwise grad + wd * param); update both moments in place; divide the
              bias-corrected first moment by the bias-corrected square root of the second
              (its running maximum with amsgrad) plus eps, and subtract lr times that.
        HINT: `work = np.multiply(grad, 1 - beta1)` is the one scratch array; `np.sqrt(v, out=work)`
              and `np.divide(m, work, out=work)` reuse it.
        """
        fused = None if group["amsgrad"] else backend_kernel("adam_update")
        if fused is not None:  # module 18's backend: the whole update in one pass over the parameter
            if not state:
                state.update(step=0, exp_avg=np.zeros_like(param), exp_avg_sq=np.zeros_like(param))
            state["step"] += 1
            beta1, beta2 = group["betas"]
            fused(param, grad, state["exp_avg"], state["exp_avg_sq"], state["step"], group["lr"], beta1, beta2,
                  group["eps"], group["weight_decay"], group["decoupled_weight_decay"])
            return
        ### BEGIN SOLUTION
        lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(param)
            state["exp_avg_sq"] = np.zeros_like(param)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(param)
        state["step"] += 1
        step = state["step"]
        if weight_decay != 0:
            if group["decoupled_weight_decay"]:
                param *= 1 - lr * weight_decay
            else:
                grad = grad + weight_decay * param
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        work = np.multiply(grad, 1 - beta1)
        exp_avg *= beta1
        exp_avg += work
        np.multiply(grad, grad, out=work)
        work *= 1 - beta2
        exp_avg_sq *= beta2
        exp_avg_sq += work
        second_moment = exp_avg_sq
        if group["amsgrad"]:
            second_moment = np.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
        step_size = lr / (1 - beta1 ** step)
        np.sqrt(second_moment, out=work)
        work /= math.sqrt(1 - beta2 ** step)
        work += eps
        np.divide(exp_avg, work, out=work)
        work *= step_size
        param -= work
        ### END SOLUTION


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019): param *= 1 - lr * weight_decay."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, decoupled_weight_decay=True)

# %% [markdown]
# ### Test: Adam's first step
#
# At step 1 the bias corrections undo the averaging exactly: $\hat m = g$, $\sqrt{\hat v} = |g|$,
# so the step is $\eta\, g / (|g| + \epsilon) \approx \eta\,\mathrm{sign}(g)$, whatever the
# gradient's size. That scale-freeness is Adam's selling point.

# %%
def test_unit_adam():
    param = Tensor([1.0, 1.0, 1.0], dtype=np.float64, requires_grad=True)
    optimizer = Adam([param], lr=0.1)
    param.grad = np.array([1e-3, -5.0, 300.0])
    optimizer.step()
    np.testing.assert_allclose(param.numpy(), [0.9, 1.1, 0.9], atol=1e-5)  # eps makes it approximate
    assert optimizer.state[param]["step"] == 1
    np.testing.assert_allclose(optimizer.state[param]["exp_avg"], 0.1 * param.grad)

    decoupled = Tensor([2.0], dtype=np.float64, requires_grad=True)
    decoupled.grad = np.zeros(1)
    AdamW([decoupled], lr=0.1, weight_decay=0.5).step()
    assert np.isclose(decoupled.item(), 2.0 * (1 - 0.1 * 0.5)), "AdamW shrinks the weight even with zero gradient"
    ### BEGIN HIDDEN TESTS
    coupled = Tensor([2.0], dtype=np.float64, requires_grad=True)
    coupled.grad = np.zeros(1)
    Adam([coupled], lr=0.1, weight_decay=0.5).step()
    assert np.isclose(coupled.item(), 1.9, rtol=1e-6), "Adam's weight decay goes through the adaptive step"
    try:
        Adam([coupled], betas=(0.9, 1.0))
        raise AssertionError("beta2 = 1 must be refused")
    except ValueError as error:
        assert "betas[1]" in str(error) and "[0, 1)" in str(error)
    ### END HIDDEN TESTS
    print("Adam, AdamW: ok")


test_unit_adam()

# %% [markdown]
# ## Step 4: RMSprop
#
# RMSprop's state is the running average of $g^2$ (`square_avg`), plus a momentum buffer and,
# when centered, the running average of $g$ (`grad_avg`). All three start at zero and, unlike
# Adam, nothing corrects for that: with $\alpha = 0.99$ the first $v$ is $0.01 g^2$, so the first
# step is $\eta\, g / (0.1|g|)$, ten times the learning rate. That is part of the definition,
# and PyTorch's implementation (which we match) does the same.

# %%
#| export
class RMSprop(Optimizer):
    """RMSprop (Hinton, 2012), with optional momentum, centering and weight decay."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
        defaults = {"lr": lr, "alpha": alpha, "eps": eps, "weight_decay": weight_decay,
                    "momentum": momentum, "centered": centered}
        super().__init__(params, defaults)

    def _check_options(self, group):
        for option in ("lr", "eps", "weight_decay", "momentum"):
            _check_option("RMSprop", option, group[option])
        _check_option("RMSprop", "alpha", group["alpha"], 0.0, 1.0)
        _check_flag("RMSprop", "centered", group["centered"])

    def _state_names(self, group):
        return (("step", "square_avg") + (("momentum_buffer",) if group["momentum"] > 0 else ())
                + (("grad_avg",) if group["centered"] else ()))

    def _update(self, param, grad, state, group):
        """One RMSprop step on the array `param`, in place.

        TODO: create state at the first step (step, square_avg, momentum_buffer when momentum > 0,
              grad_avg when centered); add weight decay; update square_avg (and grad_avg); divide
              the gradient by sqrt(square_avg - grad_avg**2 when centered) + eps; step directly or
              through the momentum buffer.
        HINT: as in Adam, one scratch array `work` holds the denominator.
        """
        ### BEGIN SOLUTION
        alpha, momentum, weight_decay = group["alpha"], group["momentum"], group["weight_decay"]
        if not state:
            state["step"] = 0
            state["square_avg"] = np.zeros_like(param)
            if momentum > 0:
                state["momentum_buffer"] = np.zeros_like(param)
            if group["centered"]:
                state["grad_avg"] = np.zeros_like(param)
        state["step"] += 1
        if weight_decay != 0:
            grad = grad + weight_decay * param
        square_avg = state["square_avg"]
        work = np.multiply(grad, grad)
        work *= 1 - alpha
        square_avg *= alpha
        square_avg += work
        if group["centered"]:
            grad_avg = state["grad_avg"]
            grad_avg *= alpha
            grad_avg += (1 - alpha) * grad
            np.multiply(grad_avg, grad_avg, out=work)
            np.subtract(square_avg, work, out=work)
            np.sqrt(work, out=work)
        else:
            np.sqrt(square_avg, out=work)
        work += group["eps"]
        np.divide(grad, work, out=work)
        if momentum > 0:
            buffer = state["momentum_buffer"]
            buffer *= momentum
            buffer += work
            np.multiply(buffer, group["lr"], out=work)
        else:
            work *= group["lr"]
        param -= work
        ### END SOLUTION

# %% [markdown]
# ### Test: RMSprop's first step

# %%
def test_unit_rmsprop():
    param = Tensor([0.0, 0.0], dtype=np.float64, requires_grad=True)
    optimizer = RMSprop([param], lr=0.01, alpha=0.99)
    param.grad = np.array([2.0, -0.5])
    optimizer.step()
    # v = 0.01 g^2, so the step is lr * g / (0.1 |g|) = 0.1 sign(g): ten times lr at first.
    np.testing.assert_allclose(param.numpy(), [-0.1, 0.1], rtol=1e-6)
    np.testing.assert_allclose(optimizer.state[param]["square_avg"], 0.01 * param.grad ** 2)
    ### BEGIN HIDDEN TESTS
    centered = Tensor([0.0], dtype=np.float64, requires_grad=True)
    optimizer = RMSprop([centered], lr=0.01, alpha=0.5, centered=True, momentum=0.9)
    centered.grad = np.array([1.0])
    optimizer.step()
    # v = 0.5, gbar = 0.5, v - gbar^2 = 0.25: the step is lr * 1 / 0.5.
    np.testing.assert_allclose(centered.numpy(), [-0.02], rtol=1e-6)
    ### END HIDDEN TESTS
    print("RMSprop: ok")


test_unit_rmsprop()

# %% [markdown]
# ## Step 5: clipping the gradient norm
#
# `clip_grad_norm_(parameters, max_norm)` computes the norm of all gradients together, as if
# they were one long vector, and scales them all down by the same factor when it exceeds
# `max_norm`. The trailing underscore is PyTorch's mark for "changes its argument in place": the
# gradients are rescaled where they are. It returns the norm *before* clipping — the number worth
# logging, since a growing gradient norm is an early warning of divergence.
#
# `norm_type` may be any $p \geq 1$ or `math.inf` (the largest absolute entry). The $10^{-6}$ in
# the factor is PyTorch's: it avoids a division by zero for an all-zero gradient.

# %%
#| export
def clip_grad_norm_(parameters, max_norm, norm_type=2.0):
    """Scale the gradients in place so that their combined norm is at most max_norm; returns the norm.

    TODO: gather the gradients (skip None), compute their combined norm, and when
          max_norm / (norm + 1e-6) < 1 multiply every gradient by that factor in place.
    HINT: for p = 2 the combined norm is sqrt(sum of every squared entry); `np.dot(flat, flat)`
          sums the squares of a 1-D array, and `g.ravel(order="K")` flattens without copying.
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    if not max_norm >= 0:
        raise ValueError(f"clip_grad_norm_: max_norm must be >= 0, got {max_norm!r}")
    grads = [p.grad.data for p in parameters if p.grad is not None]
    if not grads:
        return Tensor(0.0)
    ### BEGIN SOLUTION
    norm_type = float(norm_type)
    if norm_type == math.inf:
        total = max(float(np.max(np.abs(g))) if g.size else 0.0 for g in grads)
    elif norm_type == 2.0:
        flats = [g.ravel(order="K") for g in grads]  # views in memory order, even for transposed grads
        total = math.sqrt(sum(float(np.dot(flat, flat)) for flat in flats))
    else:
        total = sum(float(np.sum(np.abs(g) ** norm_type)) for g in grads) ** (1.0 / norm_type)
    factor = max_norm / (total + 1e-6)
    if factor < 1:
        for grad in grads:
            grad *= factor
    return Tensor(total, dtype=grads[0].dtype)
    ### END SOLUTION

# %% [markdown]
# ### Test: clipping

# %%
def test_unit_clip_grad_norm():
    a, b = Tensor([0.0, 0.0], requires_grad=True), Tensor([0.0], requires_grad=True)
    a.grad, b.grad = np.array([3.0, 0.0], dtype=np.float32), np.array([4.0], dtype=np.float32)
    norm = clip_grad_norm_([a, b], max_norm=1.0)
    assert np.isclose(norm.item(), 5.0), "the norm before clipping, of both gradients together"
    np.testing.assert_allclose(np.concatenate([a.grad, b.grad]), [0.6, 0.0, 0.8], rtol=1e-5)
    assert np.isclose(clip_grad_norm_([a, b], max_norm=10.0).item(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(a.grad, [0.6, 0.0], rtol=1e-5)  # below the limit, nothing changes
    ### BEGIN HIDDEN TESTS
    assert np.isclose(clip_grad_norm_([a, b], 100.0, norm_type=math.inf).item(), 0.8, rtol=1e-5)
    assert np.isclose(clip_grad_norm_([a, b], 100.0, norm_type=1).item(), 1.4, rtol=1e-5)
    ### END HIDDEN TESTS
    print("clip_grad_norm_: ok")


test_unit_clip_grad_norm()

# %% [markdown]
# ## Step 6: learning-rate schedules
#
# A scheduler owns nothing but a step counter. At construction it records each group's starting
# rate (`initial_lr`, PyTorch's name, so that a resumed scheduler starts from the right base)
# and sets the rate for step 0; each `scheduler.step()` — called once per epoch or per batch,
# after `optimizer.step()` — advances the counter and writes the new rate into every group.
#
# We compute each rate in **closed form**, as a function of the base rate and the step count.
# (PyTorch's schedulers update the current rate recursively, so that two schedulers can be
# chained; the values agree to rounding, which the tests check.) A subclass only writes
# `get_lr()`.
#
# `CosineWarmupLR` is the schedule of most transformer recipes (nanoGPT's among them): linear
# warmup over `warmup_steps` from `lr / warmup_steps` up to `lr`, then half a cosine down to
# `min_lr` at `total_steps`, and `min_lr` after that. PyTorch has no single class for it;
# `SequentialLR(LinearLR, CosineAnnealingLR)` builds the same curve.

# %%
#| export
class LRScheduler:
    """Base class: sets each group's lr from its initial lr and the step count (last_epoch)."""

    def __init__(self, optimizer, last_epoch=-1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"{type(self).__name__}: the first argument must be an Optimizer, got {type(optimizer).__name__}"
            )
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def get_lr(self):
        """The learning rate of each group at step `self.last_epoch`."""
        raise NotImplementedError(f"{type(self).__name__} must define get_lr()")

    def step(self):
        """Advance one step and write the new rates into the optimizer."""
        self.last_epoch += 1
        self._apply()

    def _apply(self):
        self._last_lr = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr

    def get_last_lr(self):
        """The rates that the last step() set, one per group."""
        return list(self._last_lr)

    def state_dict(self):
        return {"kind": type(self).__name__, "last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs)}

    def check_state_dict(self, state_dict):
        """Check that `state_dict` fits this scheduler, changing nothing: returns (last_epoch, base_lrs)."""
        name = type(self).__name__
        _check_kind(name, state_dict)
        _check_steps(f"{name}.load_state_dict", "last_epoch", state_dict.get("last_epoch"), -1)
        base_lrs = state_dict.get("base_lrs")
        groups = len(self.optimizer.param_groups)
        if not isinstance(base_lrs, list) or len(base_lrs) != groups:
            raise ValueError(f"{name}.load_state_dict: base_lrs must be a list of one rate per parameter group "
                             f"({groups} here), got {base_lrs!r}")
        for index, lr in enumerate(base_lrs):
            _check_option(f"{name}.load_state_dict", f"base_lrs[{index}]", lr)
        return state_dict["last_epoch"], list(base_lrs)

    def load_state_dict(self, state_dict):
        """Restore the step count and base rates saved by state_dict(), checked first; sets the rates."""
        self.last_epoch, self.base_lrs = self.check_state_dict(state_dict)
        self._apply()


def _check_steps(scheduler, name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{scheduler}: {name} must be an integer >= {minimum}, got {value!r}")


class StepLR(LRScheduler):
    """Multiply the learning rate by gamma every step_size steps."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        _check_steps("StepLR", "step_size", step_size, 1)
        _check_option("StepLR", "gamma", gamma)
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        """The rate of each group at step `self.last_epoch`.

        TODO: base_lr * gamma ** (number of completed step_size periods), for each group.
        HINT: `//` counts the completed periods; `self.base_lrs` holds one base rate per group.
        """
        ### BEGIN SOLUTION
        return [base_lr * self.gamma ** (self.last_epoch // self.step_size) for base_lr in self.base_lrs]
        ### END SOLUTION


class CosineAnnealingLR(LRScheduler):
    """Half a cosine from the base rate down to eta_min over T_max steps (periodic after)."""

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        _check_steps("CosineAnnealingLR", "T_max", T_max, 1)
        _check_option("CosineAnnealingLR", "eta_min", eta_min)
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        """The rate of each group at step t = `self.last_epoch`.

        TODO: eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2 for each group.
        HINT: the cosine factor is the same for every group: compute it once.
        """
        ### BEGIN SOLUTION
        cosine = (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
        return [self.eta_min + (base_lr - self.eta_min) * cosine for base_lr in self.base_lrs]
        ### END SOLUTION


class CosineWarmupLR(LRScheduler):
    """Linear warmup to the base rate over warmup_steps, then cosine decay to min_lr at total_steps.

    At step t: lr * (t + 1) / warmup_steps while t < warmup_steps; then
    min_lr + (lr - min_lr) * (1 + cos(pi * progress)) / 2 with
    progress = (t - warmup_steps) / (total_steps - warmup_steps); min_lr from total_steps on.
    """

    def __init__(self, optimizer, warmup_steps, total_steps, min_lr=0.0, last_epoch=-1):
        _check_steps("CosineWarmupLR", "warmup_steps", warmup_steps, 0)
        _check_steps("CosineWarmupLR", "total_steps", total_steps, warmup_steps + 1)
        _check_option("CosineWarmupLR", "min_lr", min_lr)
        self.warmup_steps, self.total_steps, self.min_lr = warmup_steps, total_steps, min_lr
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        """The rate of each group at step t = `self.last_epoch`.

        TODO: the warmup, cosine and floor phases of the class docstring, for each group.
        HINT: clamping the progress at 1 gives the floor phase for free.
        """
        ### BEGIN SOLUTION
        t = self.last_epoch
        if t < self.warmup_steps:
            return [base_lr * (t + 1) / self.warmup_steps for base_lr in self.base_lrs]
        progress = min(1.0, (t - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        cosine = (1 + math.cos(math.pi * progress)) / 2
        return [self.min_lr + (base_lr - self.min_lr) * cosine for base_lr in self.base_lrs]
        ### END SOLUTION


class LambdaLR(LRScheduler):
    """lr = base_lr * lr_lambda(step); one function for all groups or a list, one per group."""

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        groups = len(optimizer.param_groups) if isinstance(optimizer, Optimizer) else 0
        self.lr_lambdas = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else [lr_lambda] * groups
        if len(self.lr_lambdas) != groups:
            raise ValueError(f"LambdaLR: got {len(self.lr_lambdas)} functions for {groups} parameter groups")
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base_lr * rule(self.last_epoch) for base_lr, rule in zip(self.base_lrs, self.lr_lambdas)]

# %% [markdown]
# ### Test: schedules

# %%
def _rates(scheduler, steps):
    """The learning rate of the first group at steps 0, 1, ..., steps - 1."""
    rates = []
    for _ in range(steps):
        rates.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.step()
    return rates


def test_unit_schedulers():
    param = Tensor([0.0], requires_grad=True)
    rates = _rates(StepLR(SGD([param], lr=1.0), step_size=2, gamma=0.5), 5)
    assert rates == [1.0, 1.0, 0.5, 0.5, 0.25], rates

    rates = _rates(CosineAnnealingLR(SGD([param], lr=1.0), T_max=4), 5)
    quarter = (1 + math.cos(math.pi / 4)) / 2
    np.testing.assert_allclose(rates, [1.0, quarter, 0.5, 1 - quarter, 0.0], atol=1e-12)

    rates = _rates(CosineWarmupLR(SGD([param], lr=1.0), warmup_steps=4, total_steps=8, min_lr=0.1), 10)
    np.testing.assert_allclose(rates[:5], [0.25, 0.5, 0.75, 1.0, 1.0])
    np.testing.assert_allclose(rates[6], 0.1 + 0.9 * 0.5)  # halfway through the decay
    np.testing.assert_allclose(rates[8:], [0.1, 0.1])
    ### BEGIN HIDDEN TESTS
    optimizer = SGD([param], lr=2.0)
    LambdaLR(optimizer, lambda step: 0.5)
    assert optimizer.param_groups[0]["lr"] == 1.0
    try:
        CosineWarmupLR(optimizer, warmup_steps=10, total_steps=5)
        raise AssertionError("total_steps below warmup_steps must be refused")
    except ValueError as error:
        assert "total_steps" in str(error)
    ### END HIDDEN TESTS
    print("schedulers: ok")


test_unit_schedulers()

# %% [markdown]
# ## Systems analysis: what does an optimizer cost?
#
# Two measurements on the MNIST network of the course, the MLP 784-256-128-10 of module 03
# (235,146 parameters, 940,584 bytes in float32):
#
# 1. **State memory**, counted in bytes from `optimizer.state` after one step. The table in the
#    foundations predicts 0 for SGD, one copy of the parameters for momentum, two for Adam.
# 2. **Milliseconds per step** (median), with random gradients set by hand. A training step also
#    runs the forward and backward passes; the optimizer's share should stay small.

# %%
def optimizer_state_bytes(optimizer):
    """Bytes held in the optimizer's per-parameter state arrays."""
    return sum(value.nbytes for entry in optimizer.state.values() for value in entry.values()
               if isinstance(value, np.ndarray))


def _mlp_parameters():
    from tinytorch.core.layers import Linear, Sequential

    model = Sequential(Linear(784, 256), Linear(256, 128), Linear(128, 10))
    params = list(model.parameters())
    rng = np.random.default_rng(0)
    for param in params:
        param.grad = rng.standard_normal(param.shape, dtype=np.float32)
    return params


OPTIMIZER_RECIPES = {
    "SGD": lambda params: SGD(params, lr=0.1),
    "SGD + momentum": lambda params: SGD(params, lr=0.1, momentum=0.9),
    "RMSprop": lambda params: RMSprop(params),
    "Adam": lambda params: Adam(params),
    "AdamW": lambda params: AdamW(params),
}


def measure_optimizers(repeats=100):
    """{name: (state bytes, parameter bytes, median ms per step)} on the MLP 784-256-128-10."""
    import time

    results = {}
    for name, make in OPTIMIZER_RECIPES.items():
        params = _mlp_parameters()
        optimizer = make(params)
        optimizer.step()  # creates the state
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            optimizer.step()
            samples.append((time.perf_counter() - start) * 1e3)
        results[name] = (optimizer_state_bytes(optimizer), sum(p.nbytes for p in params), sorted(samples)[repeats // 2])
    return results


if __name__ == "__main__":
    for name, (state_bytes, param_bytes, milliseconds) in measure_optimizers().items():
        print(f"{name:>15}: state {state_bytes:>9,} bytes = {state_bytes / param_bytes:.0f}x the parameters "
              f"(total {1 + state_bytes / param_bytes:.0f}x), {milliseconds:.3f} ms per step")

# %% [markdown]
# On the MLP, SGD holds no state, momentum 940,584 bytes (1x the parameters) and Adam
# 1,881,168 (2x: with the parameters themselves, 3x). Gradients add one more copy during
# training, so Adam training needs four times the parameters' memory before any activation is
# stored. For a 7-billion-parameter model in float32 that is 112 GB — why large models shard
# optimizer state across devices (ZeRO) or keep it in 8 bits.
#
# Time: one step updates 235,146 numbers. On the shared 2-core machine this module was written
# on (`OPENBLAS_NUM_THREADS=1 python modules/06_optimizers/optimizers.py`), plain SGD took about
# 0.15 ms per step, momentum 0.3 ms, RMSprop 0.8 ms and Adam 1.2 to 1.4 ms: a dozen in-place
# passes instead of one. A whole training step of the MLP at batch 128 (forward, backward,
# Adam) took 15 to 22 ms there, so even Adam is under a tenth of it: the optimizer matters for
# memory more than for speed. Run the cell above for your machine's figures.

# %% [markdown]
# ## Production context: how PyTorch does it
#
# - **Same equations, fewer passes.** `torch.optim.Adam` has three implementations: a loop over
#   parameters like ours (`foreach=False`), a *foreach* version (the default on GPU) that launches
#   one kernel per operation for all parameters at once, and a *fused* one that does the whole
#   update in one kernel, reading each number once. Our NumPy version is the first kind, in
#   place. On the MLP's parameters, single-threaded, interleaved in one process, our Adam step
#   (about 1.2 ms) was faster than PyTorch 2.13's loop (1.9 ms) and its foreach version
#   (1.5 ms) on the CPU: at this size the passes over memory, not the interpreter, set the time.
# - **Parameter groups and `state_dict`** work as here: PyTorch saves parameters by position, so
#   an optimizer checkpoint only loads into an optimizer built over the same parameters in the
#   same order.
# - **`zero_grad(set_to_none=True)`** is PyTorch's default since 2.0: no memory is written, and
#   the next backward pass assigns the gradient instead of adding to zeros.
# - **Schedulers** in PyTorch are chainable (each multiplies the current rate), which is why they
#   compute recursively; ours compute in closed form and agree to rounding.
# - **At scale**, the optimizer's memory is the problem: ZeRO (DeepSpeed) and FSDP shard Adam's
#   $m$ and $v$ across GPUs, and 8-bit Adam (bitsandbytes) stores them quantized — module 15's
#   idea applied to optimizer state.

# %% [markdown]
# ## Integration test: fitting a linear model with every optimizer
#
# Module 05 is not needed to see an optimizer work: for a linear model and the mean squared
# error, the gradients have a closed form, $\partial L / \partial W = \frac{2}{N} e^\top X$ and
# $\partial L/\partial b = \frac{2}{N}\sum_n e_n$, with $e = XW^\top + b - y$. We set them by
# hand on a module 03 `Linear` and let each optimizer, with a schedule, find the true weights.

# %%
def test_integration_fit_linear_model():
    from tinytorch.core.layers import Linear
    from tinytorch.core.tensor import manual_seed

    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((64, 3)).astype(np.float32)
    true_weight, true_bias = np.array([[2.0, -1.0, 0.5]], dtype=np.float32), np.float32(0.3)
    targets = inputs @ true_weight.T + true_bias

    recipes = {
        "SGD + Nesterov": (lambda p: SGD(p, lr=0.05, momentum=0.9, nesterov=True), 200),
        "Adam": (lambda p: Adam(p, lr=0.05), 400),
        "AdamW": (lambda p: AdamW(p, lr=0.05, weight_decay=0.0), 400),
        "RMSprop + momentum": (lambda p: RMSprop(p, lr=0.02, momentum=0.5), 300),
    }
    for name, (make, steps) in recipes.items():
        manual_seed(0)
        model = Linear(3, 1)
        optimizer = make(model.parameters())
        scheduler = CosineAnnealingLR(optimizer, T_max=steps, eta_min=1e-4)
        for _ in range(steps):
            error = model(Tensor(inputs)).numpy() - targets
            model.weight.grad = 2 / len(inputs) * error.T @ inputs
            model.bias.grad = 2 / len(inputs) * error.sum(axis=0)
            clip_grad_norm_(model.parameters(), max_norm=10.0)
            optimizer.step()
            scheduler.step()
        loss = float(np.mean((model(Tensor(inputs)).numpy() - targets) ** 2))
        assert loss < 1e-4, f"{name} did not fit the linear model: loss {loss:.2e}"
    print("integration: ok")


test_integration_fit_linear_model()

# %% [markdown]
# ## ML systems thinking
#
# 1. Adam keeps $m$ and $v$ in float32 for every parameter. For GPT-3 (175 billion parameters),
#    how much memory is that, and how many 80 GB GPUs would it fill before the weights?
# 2. Our Adam makes about a dozen passes over the parameters per step; a fused kernel makes one.
#    When the parameters are larger than the CPU's cache, why does the number of passes, not the
#    number of arithmetic operations, decide the time?
# 3. A learning rate warmup helps Adam most in the first few hundred steps. Looking at the bias
#    correction and at $v_t$ after a handful of steps, why are the earliest updates unreliable?
# 4. `load_state_dict` maps saved state to parameters by position. What silently goes wrong if
#    you add a layer to the model, rebuild the optimizer, and load an old optimizer checkpoint?
#    Which check above would catch it, and which case would it miss?
#
# ## Summary
#
# You built the optimizers that train most networks, each matching PyTorch's equations: SGD
# with momentum, dampening, Nesterov and weight decay; Adam with AMSGrad; AdamW with decoupled
# weight decay; RMSprop with momentum and centering — all updating NumPy arrays in place with
# one scratch array per step. You organised parameters into groups with their own options,
# saved and restored optimizer state so that training resumes exactly, scheduled the learning
# rate (step, cosine, warmup-cosine, lambda) and clipped gradients by their global norm. You
# measured that Adam holds two extra copies of the parameters. Next, module 07 puts model,
# loss, autograd and optimizer together into a training loop.
