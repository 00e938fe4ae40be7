"""Conformance checks for pluggable parts, like Gymnasium's ``check_env``.

Each ``check_*`` function exercises one contract the engine relies on and raises
:class:`ConformanceError` (an ``AssertionError``) with one line naming the part and
the broken rule; it returns ``None`` when the part conforms. The built-ins pass them
(the registry tests call them for every registered name), and so must a plugin::

    from cosim.checks import check_policy
    check_policy(MyPolicy)

- :func:`check_policy` — a selection policy class ``cls(n_devices)`` with
  ``select(SelectionContext, k) -> device ids`` (see :mod:`cosim.engine.policies`).
- :func:`check_allocator` — a bandwidth allocator ``f(links, remaining_bytes,
  average_rate_bps) -> shares`` (see :mod:`radio.ofdma`).
- :func:`check_algorithm` — an FL algorithm class (see :mod:`learning.algorithms.base`),
  driven through a few rounds on tiny synthetic data.
- :func:`check_mobility` — a mobility model class ``cls(n_devices, area_m, rng, **params)``
  with ``positions_m``, ``speeds_mps`` and ``step(dt_s)`` (see :mod:`radio.mobility.base`).
- :func:`check_pathloss` — a path-loss model class ``cls(carrier_hz=..., h_bs_m=...)``
  with ``loss_db``, ``los_probability``, ``shadow_std_db``, ``decorrelation_distance_m``
  over (cells × devices) arrays (see :mod:`radio.pathloss.base`).
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np

#: Devices of the contexts a policy is checked with.
POLICY_DEVICES = 12
#: Random states tried per check.
TRIALS = 20


class ConformanceError(AssertionError):
    """A plugin breaks the contract of its kind (one line: which part, which rule)."""


def _require(condition: bool, what: str, rule: str) -> None:
    if not condition:
        raise ConformanceError(f"{what}: {rule}")


def _name(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"


# ----------------------------------------------------------------------------- policies
def _contexts(n: int, seed: int) -> list[Any]:
    from cosim.engine.policies import SelectionContext

    rng = np.random.default_rng(seed)
    contexts = []
    for trial in range(TRIALS):
        alive = rng.random(n) < (1.0 if trial == 0 else 0.0 if trial == 1 else rng.uniform(0.2, 1.0))
        contexts.append(SelectionContext(
            round_idx=trial,
            alive=alive,
            expected_uplink_rate_bps=rng.uniform(1e5, 1e8, n),
            expected_energy_j=rng.uniform(0.1, 10.0, n),
            expected_time_s=rng.uniform(0.5, 20.0, n),
            battery_j=rng.uniform(0.0, 1e3, n),
            deadline_s=None if trial % 2 else 8.0,
            rng=np.random.default_rng(1000 + trial),
        ))
    return contexts


def _selections(policy: Any, n: int, seed: int) -> list[list[int]]:
    picks = []
    for trial, ctx in enumerate(_contexts(n, seed)):
        k = 1 + trial % n
        chosen = np.asarray(policy.select(ctx, k))
        picks.append([int(d) for d in chosen])
    return picks


def check_policy(cls: type, n_devices: int = POLICY_DEVICES) -> None:
    """Check a selection-policy class: ``cls(n_devices).select(ctx, k)`` -> distinct alive ids.

    Rules: it builds from the device count alone; ``select`` returns a 1-D integer
    array of at most ``k`` distinct ids, all alive; the same inputs and generator
    give the same choice; it pickles mid-run (checkpoints) and the copy goes on
    choosing exactly as the original does.
    """
    what = f"selection policy {_name(cls)}"
    try:
        policy = cls(n_devices)
    except Exception as exc:  # noqa: BLE001 - reported as a broken rule
        raise ConformanceError(f"{what}: cls(n_devices) failed: {type(exc).__name__}: {exc}") from None
    _require(callable(getattr(policy, "select", None)), what, "has no select(ctx, k) method")
    for trial, ctx in enumerate(_contexts(n_devices, seed=0)):
        k = 1 + trial % n_devices
        chosen = np.asarray(policy.select(ctx, k))
        _require(chosen.ndim == 1 and (chosen.size == 0 or np.issubdtype(chosen.dtype, np.integer)), what,
                 f"select must return a 1-D integer array, got dtype {chosen.dtype} shape {chosen.shape}")
        _require(len(set(chosen.tolist())) == chosen.size, what, f"select returned repeated ids {chosen.tolist()}")
        _require(chosen.size <= k, what, f"select returned {chosen.size} ids for k={k}")
        _require(bool(np.all(ctx.alive[chosen])) if chosen.size else True, what,
                 f"select returned dead devices {[int(d) for d in chosen if not ctx.alive[d]]}")
    first, second = _selections(cls(n_devices), n_devices, 1), _selections(cls(n_devices), n_devices, 1)
    _require(first == second, what, "same inputs and generator must give the same selections")
    policy = cls(n_devices)
    contexts = _contexts(n_devices, seed=2)
    half = len(contexts) // 2
    for ctx in contexts[:half]:
        policy.select(ctx, 3)
    try:
        copy = pickle.loads(pickle.dumps(policy))
    except Exception as exc:  # noqa: BLE001
        raise ConformanceError(f"{what}: does not pickle (checkpoints need it): {type(exc).__name__}: {exc}") from None
    for ctx in contexts[half:]:
        twin = pickle.loads(pickle.dumps(ctx))
        a, b = np.asarray(policy.select(ctx, 3)), np.asarray(copy.select(twin, 3))
        _require(a.tolist() == b.tolist(), what, "a pickled copy chooses differently from the original")


# ----------------------------------------------------------------------------- allocators
def _share_links(se_bps_hz: Any, full_power_share: Any = None) -> Any:
    """Links with plain Shannon rates ``x·B·se`` (fixed PSD), or uplink-like ones whose
    SINR falls once the share passes ``full_power_share`` (the device's power is spread)."""
    from radio.abstraction import LinkAbstraction
    from radio.share import ShareLinks

    se = np.asarray(se_bps_hz, dtype=float)
    xp = np.full(se.size, np.inf) if full_power_share is None else np.asarray(full_power_share, dtype=float)
    power = np.where(np.isfinite(xp), 0.2, 0.0)
    return ShareLinks(20e6, 51, np.exp2(se) - 1.0, xp, power, LinkAbstraction("shannon", 0.0, 100.0, 0.0))


def check_allocator(allocate: Any, channel_blind: bool = False) -> None:
    """Check a bandwidth allocator ``allocate(links, remaining_bytes, average_rate_bps) -> x``.

    ``links`` is a :class:`radio.share.ShareLinks` (the flows' rate functions). Rules:
    no flows give an empty array; one flow gets the whole band; shares are finite,
    >= 0, float64, shaped like the input and sum to 1, on fixed-PSD (downlink-like)
    and power-limited (uplink-like) links; a flow without coverage gets no share while
    another has coverage (unless ``channel_blind``); with no coverage at all the shares
    are equal; the result is deterministic; the function pickles (process executors
    and checkpoints); mismatched shapes or negative inputs raise ``ValueError``.
    """
    what = f"allocator {_name(allocate)}"
    empty = np.asarray(allocate(_share_links([]), np.zeros(0), np.zeros(0)))
    _require(empty.shape == (0,), what, f"no flows must give shape (0,), got {empty.shape}")
    single = np.asarray(allocate(_share_links([2.0]), np.array([100.0]), np.array([1e6])))
    _require(single.tolist() == [1.0], what, f"one flow must get the whole band, got {single.tolist()}")
    rng = np.random.default_rng(0)
    for trial in range(TRIALS):
        n = 1 + trial % 9
        se = np.where(rng.random(n) < 0.25, 0.0, rng.uniform(1e-3, 8.0, n))
        full_power = None if trial % 2 == 0 else np.where(rng.random(n) < 0.5, np.inf, rng.uniform(0.05, 1.0, n))
        links = _share_links(se, full_power)
        remaining = rng.integers(0, 10**7, n).astype(float)
        average = rng.uniform(0.0, 1e8, n)
        x = np.asarray(allocate(links, remaining, average))
        _require(x.shape == (n,) and x.dtype == np.float64, what, f"shares must be float64 of shape ({n},)")
        _require(bool(np.all(np.isfinite(x)) and np.all(x >= 0.0)), what, f"shares must be finite and >= 0: {x}")
        _require(abs(float(x.sum()) - 1.0) < 1e-9, what, f"shares must sum to 1, got {float(x.sum())!r}")
        if not channel_blind and np.any(se > 0):
            _require(bool(np.all(x[se == 0] == 0.0)), what, "a flow without coverage (SE 0) got a share")
        again = np.asarray(allocate(_share_links(se, full_power), remaining.copy(), average.copy()))
        _require(np.array_equal(x, again), what, "same inputs must give the same shares")
    blind = np.asarray(allocate(_share_links(np.zeros(4)), np.array([1.0, 2.0, 3.0, 4.0]), np.zeros(4)))
    _require(np.allclose(blind, 0.25), what, f"with no coverage at all shares must be equal, got {blind.tolist()}")
    try:
        pickle.loads(pickle.dumps(allocate))
    except Exception as exc:  # noqa: BLE001
        raise ConformanceError(f"{what}: does not pickle: {type(exc).__name__}: {exc}") from None
    bad_inputs = (((_share_links([1.0, 2.0]), [1.0], [1.0, 1.0]), "mismatched shapes"),
                  ((_share_links([1.0]), [-1.0], [1.0]), "negative remaining_bytes"))
    for args, rule in bad_inputs:
        try:
            allocate(args[0], *(np.asarray(a, dtype=float) for a in args[1:]))
        except ValueError:
            continue
        raise ConformanceError(f"{what}: {rule} must raise ValueError")


# ----------------------------------------------------------------------------- algorithms
#: The tiny model and local-training settings an algorithm is checked with.
CHECK_MODEL = {"name": "vit", "patch_size": 7, "dim": 16, "depth": 1, "heads": 2, "mlp_ratio": 2.0}
CHECK_PARAMS = {"lr": 3e-3, "local_epochs": 1.0, "batch_size": 16}


def tiny_federated_data(n_devices: int = 3, seed: int = 0) -> Any:
    """Synthetic 28x28 data, 4 classes, split IID over ``n_devices`` (what :func:`check_algorithm` uses)."""
    from learning.data import build_federated_data
    from learning.data.synthetic import make_synthetic

    dataset = make_synthetic(num_train=32 * n_devices, num_test=16 * n_devices, num_classes=4, seed=seed)
    return build_federated_data(dataset, n_devices, "iid", {}, seed)


def _tensors(state: Any, prefix: str = "") -> dict[str, Any]:
    import torch

    if isinstance(state, torch.Tensor):
        return {prefix: state}
    if isinstance(state, dict):
        out: dict[str, Any] = {}
        for key, value in state.items():
            out.update(_tensors(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {}


def _same(a: Any, b: Any) -> bool:
    import torch

    ta, tb = _tensors(a), _tensors(b)
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


def check_algorithm(cls: type, params: dict[str, Any] | None = None, model_config: dict[str, Any] | None = None,
                    rounds: int = 2) -> None:
    """Check an FL algorithm class against the contract the engine drives (``learning.algorithms.base``).

    Builds it on :func:`tiny_federated_data` with ``model_config`` (default
    :data:`CHECK_MODEL`) and ``params`` (default :data:`CHECK_PARAMS`) and runs
    ``rounds`` synchronous rounds. Rules: ``name`` (str), ``communicates`` and
    ``personalized`` (bool) class attributes; an unknown hyper-parameter is a
    ``ValueError`` naming the allowed keys; ``client()`` is built once and pickles;
    ``local_update`` is a pure function of its inputs (same seed, same result; another
    seed, another result) returning a picklable ``LocalResult`` with the device, its
    sample count, FLOPs > 0 and ``train_loss``/``train_accuracy`` metrics; downlink and
    uplink exist exactly when the class communicates, carry the round number and
    weigh what ``cost_model`` says; ``evaluate`` gives one accuracy in [0, 1] per
    device and a global accuracy exactly when the algorithm is not personalized.
    """
    from learning.algorithms.base import CostModel, LocalResult

    what = f"algorithm {_name(cls)}"
    for attribute, kind in (("name", str), ("communicates", bool), ("personalized", bool)):
        _require(isinstance(getattr(cls, attribute, None), kind), what, f"class attribute {attribute} must be a {kind.__name__}")
    model = dict(CHECK_MODEL if model_config is None else model_config)
    hyper = dict(CHECK_PARAMS if params is None else params)
    try:
        cls.resolve_params({**hyper, "no_such_param_xyz": 1})
    except ValueError as exc:
        _require("allowed" in str(exc) and "no_such_param_xyz" in str(exc), what,
                 f"an unknown hyper-parameter must be a ValueError naming it and the allowed keys, got: {exc}")
    else:
        raise ConformanceError(f"{what}: an unknown hyper-parameter must raise ValueError")
    data = tiny_federated_data()
    algorithm = cls(data, model, hyper, 0)
    client = algorithm.client()
    _require(algorithm.client() is client, what, "client() must return the same client every time")
    client = pickle.loads(pickle.dumps(client))
    cost = cls.cost_model(model, hyper, tuple(data.input_shape), int(data.num_classes))
    _require(isinstance(cost, CostModel), what, "cost_model must return a CostModel")
    devices = list(range(data.n_devices))
    for round_idx in range(rounds):
        uplinks = {}
        for device in devices:
            payload = algorithm.downlink(device, round_idx)
            _require((payload is not None) == cls.communicates, what,
                     f"downlink must be {'a Payload' if cls.communicates else 'None'} (communicates={cls.communicates})")
            if payload is not None:
                _require(payload.config.get("round") == round_idx, what, "downlink config must carry the round number")
                _require(payload.wire_bytes == cost.downlink_bytes, what,
                         f"downlink weighs {payload.wire_bytes} B but cost_model says {cost.downlink_bytes} B")
            state = algorithm.device_state(device)
            result = client.local_update(device, state, payload, seed=100 * round_idx + device)
            again = client.local_update(device, state, payload, seed=100 * round_idx + device)
            _require(isinstance(result, LocalResult), what, "local_update must return a LocalResult")
            _require(result.device == device and result.samples == data.num_train(device), what,
                     "LocalResult must name its device and that device's training sample count")
            _require(result.flops > 0, what, "LocalResult.flops must be > 0")
            _require({"train_loss", "train_accuracy"} <= set(result.metrics), what,
                     "LocalResult.metrics must hold train_loss and train_accuracy")
            _require(_same(result.state, again.state) and result.metrics == again.metrics, what,
                     "local_update must give the same result for the same inputs and seed")
            _require((result.uplink is not None) == cls.communicates, what,
                     "an uplink must exist exactly when the algorithm communicates")
            if result.uplink is not None:
                _require(result.uplink.config.get("round") == round_idx, what, "uplink config must carry the round number")
                _require(result.uplink.wire_bytes == cost.uplink_bytes, what,
                         f"uplink weighs {result.uplink.wire_bytes} B but cost_model says {cost.uplink_bytes} B")
                uplinks[device] = (result.uplink, result.samples)
            pickle.dumps(result)
            algorithm.commit(result)
        algorithm.aggregate(uplinks, round_idx)
    state = algorithm.device_state(0)
    payload = algorithm.downlink(0, rounds)
    a = client.local_update(0, state, payload, seed=5)
    b = client.local_update(0, state, payload, seed=6)
    _require(not _same(a.uplink.tensors if a.uplink is not None else a.state,
                       b.uplink.tensors if b.uplink is not None else b.state), what,
             "local_update must depend on its seed (another seed, another result)")
    evaluation = algorithm.evaluate(devices)
    _require(set(evaluation.per_device_accuracy) == set(devices), what, "evaluate must give one accuracy per device")
    _require(all(0.0 <= acc <= 1.0 for acc in evaluation.per_device_accuracy.values()), what,
             "accuracies must be in [0, 1]")
    _require((evaluation.global_accuracy is not None) == (not cls.personalized), what,
             "evaluate must give a global accuracy exactly when the algorithm is not personalized")


# ----------------------------------------------------------------------------- radio models
#: The area [m] and device count a mobility model is checked with.
CHECK_AREA_M = (500.0, 300.0)
CHECK_DEVICES = 40


def check_mobility(cls: type, **params: Any) -> None:
    """Check a mobility model class built as ``cls(n_devices, area_m, rng, **params)``.

    Rules: ``positions_m`` is (n, 2) inside the area and ``speeds_mps`` is (n,), >= 0;
    ``step(dt_s)`` returns the (n,) distances moved [m], >= 0, zero for ``dt_s = 0``,
    and keeps every device inside the area; the same generator seed gives the same
    trajectory; a pickled copy (checkpoints) moves exactly as the original; an unknown
    parameter is a ``TypeError`` naming it; a negative or non-finite ``dt_s`` is a
    ``ValueError``.
    """
    what = f"mobility model {_name(cls)}"
    width, height = CHECK_AREA_M

    def make(seed: int) -> Any:
        return cls(CHECK_DEVICES, CHECK_AREA_M, np.random.default_rng(seed), **params)

    def inside(positions: np.ndarray) -> bool:
        return bool(np.all(positions >= -1e-9) and np.all(positions[:, 0] <= width + 1e-9)
                    and np.all(positions[:, 1] <= height + 1e-9))

    model = make(0)
    positions = np.asarray(model.positions_m)
    _require(positions.shape == (CHECK_DEVICES, 2) and inside(positions), what,
             "positions_m must be (n_devices, 2) inside the area")
    speeds = np.asarray(model.speeds_mps)
    _require(speeds.shape == (CHECK_DEVICES,) and bool(np.all(speeds >= 0)), what, "speeds_mps must be (n,) and >= 0")
    _require(np.array_equal(np.asarray(model.step(0.0)), np.zeros(CHECK_DEVICES)), what, "step(0) must move nothing")
    twin = make(0)
    for dt_s in (0.5, 3.0, 40.0, 400.0):
        moved = np.asarray(model.step(dt_s))
        _require(moved.shape == (CHECK_DEVICES,) and moved.dtype == np.float64 and bool(np.all(moved >= 0)), what,
                 "step(dt_s) must return float64 distances >= 0 of shape (n,)")
        _require(inside(np.asarray(model.positions_m)), what, f"a device left the area after step({dt_s})")
        _require(np.array_equal(moved, np.asarray(twin.step(dt_s))), what, "the same seed must give the same trajectory")
    copy = pickle.loads(pickle.dumps(model))
    for dt_s in (1.0, 25.0):
        _require(np.array_equal(np.asarray(model.step(dt_s)), np.asarray(copy.step(dt_s))), what,
                 "a pickled copy moves differently from the original")
    try:
        cls(CHECK_DEVICES, CHECK_AREA_M, np.random.default_rng(0), **params, no_such_param_xyz=1)
    except TypeError as exc:
        _require("no_such_param_xyz" in str(exc), what, "an unknown parameter's TypeError must name it")
    else:
        raise ConformanceError(f"{what}: an unknown parameter must raise TypeError")
    for bad in (-1.0, float("nan"), float("inf")):
        try:
            model.step(bad)
        except ValueError:
            continue
        raise ConformanceError(f"{what}: step({bad}) must raise ValueError")


def check_pathloss(cls: type, carrier_hz: float = 3.5e9, h_bs_m: float = 25.0) -> None:
    """Check a path-loss model class built as ``cls(carrier_hz=..., h_bs_m=...)``.

    Rules: ``loss_db(d2d_m, h_ut_m, los)`` over (cells, devices) arrays is float64,
    finite and > 0, broadcasts (a scalar call gives a 0-d result) and equals the
    scalar calls element by element; ``los_probability`` is in [0, 1];
    ``shadow_std_db`` has the links' shape and ``decorrelation_distance_m`` is > 0;
    results are deterministic and a pickled copy gives the same losses.
    """
    what = f"path-loss model {_name(cls)}"
    model = cls(carrier_hz=carrier_hz, h_bs_m=h_bs_m)
    rng = np.random.default_rng(7)
    d2d = rng.uniform(0.0, 6000.0, size=(3, 40))
    h_ut = rng.uniform(1.0, 3.0, size=(40,))
    los = rng.random((3, 40)) < 0.5
    loss = np.asarray(model.loss_db(d2d, h_ut, los))
    _require(loss.shape == (3, 40) and loss.dtype == np.float64, what, "loss_db must be float64 of the links' shape")
    _require(bool(np.all(np.isfinite(loss)) and np.all(loss > 0)), what, "loss_db must be finite and > 0 dB")
    _require(np.asarray(model.loss_db(50.0, 1.5, True)).shape == (), what, "a scalar loss_db call must give a 0-d result")
    scalar = [float(model.loss_db(d2d[1, j], h_ut[j], los[1, j])) for j in range(40)]
    _require(np.array_equal(loss[1], scalar), what, "vectorised loss_db must equal the scalar calls")
    p = np.asarray(model.los_probability(d2d, h_ut))
    _require(p.shape == (3, 40) and bool(np.all((p >= 0) & (p <= 1))), what, "los_probability must be in [0, 1]")
    _require(np.asarray(model.shadow_std_db(los)).shape == (3, 40), what, "shadow_std_db must have the links' shape")
    _require(bool(np.all(np.asarray(model.decorrelation_distance_m(los)) > 0)), what,
             "decorrelation_distance_m must be > 0")
    _require(np.array_equal(loss, np.asarray(model.loss_db(d2d, h_ut, los))), what, "loss_db must be deterministic")
    copy = pickle.loads(pickle.dumps(model))
    _require(np.array_equal(loss, np.asarray(copy.loss_db(d2d, h_ut, los))), what, "a pickled copy gives other losses")
