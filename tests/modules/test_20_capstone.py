"""Module 20 Capstone (Torch Olympics), graded through the exported package `tinytorch.olympics`.

A real round trip on MNIST-format fixture files: the milestone's MLP trained on them is the
float32 baseline; submissions are written by `submit` and judged by `validate`, which must
accept the honest ones and name what is wrong with each kind of tampered one. The TinyGPT event
runs on a small random-weight GPT (module 13) saved as the tinygpt milestone saves its checkpoint.
"""

import json
import shutil
import time

import numpy as np
import pytest

from tests.modules.fixtures_olympics import (
    ROOT,
    SETTINGS,
    olympics_setting,
    rounded_copy,
)
from tinytorch.core.benchmarking import milestone_test_split
from tinytorch.core.training import load_checkpoint, save_checkpoint, save_state
from tinytorch.olympics import (
    EVENTS,
    MANIFEST,
    SubmissionError,
    Validation,
    check_architecture,
    folded_batchnorms,
    get_event,
    latency_within,
    rank_submissions,
    rerun_outputs,
    sha256_file,
    submit,
    validate,
    write_leaderboard,
)

VALIDATE = {"root": ROOT, "rerun_samples": 24, "latency_tolerance": 0.5, "attempts": 3, "seed": 0}


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    with olympics_setting(tmp_path_factory.mktemp("olympics")) as value:
        yield value


@pytest.fixture(scope="module")
def honest(setting):
    """A submission of the baseline rounded to float16 weights, to the closed-division MNIST event."""
    entry = rounded_copy(setting, setting.folder / "rounded.safetensors")
    manifest = submit("mnist", entry, setting.folder / "honest", baseline=setting.baseline, data=setting.data,
                      root=ROOT, submitter="ada", settings=SETTINGS)
    return manifest.parent


@pytest.fixture
def copy(honest, tmp_path):
    target = tmp_path / "entry"
    shutil.copytree(honest, target)
    return target


def rewrite_manifest(folder, change):
    manifest = json.loads((folder / MANIFEST).read_text())
    change(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest))


def failed(verdict):
    return {check.name: check.message for check in verdict.failures()}


def test_hashes_and_the_architecture_rule():
    assert sha256_file(ROOT / "LICENSE") == __import__("hashlib").sha256((ROOT / "LICENSE").read_bytes()).hexdigest()
    reference = {"1.weight": np.zeros((512, 784)), "1.bias": np.zeros(512)}
    assert check_architecture({"1.weight": np.zeros((512, 784), np.int8), "1.bias": np.zeros(512),
                               "1.scale": np.ones(512)}, reference) == [], "int8 and extra scales are allowed"
    assert check_architecture({"1.weight": np.zeros((64, 784))}, reference) == [
        "1.weight has shape (64, 784), the milestone's is (512, 784)", "1.bias is missing"]
    packed = {"1.weight": np.zeros((512, 392), np.uint8), "1.weight_shape": np.array([512, 784]), "1.bias": np.zeros(512)}
    assert check_architecture(packed, reference) == [], "a packed weight is compared by the logical shape it states"
    assert check_architecture({**packed, "1.weight_shape": np.array([512, 392])}, reference) == [
        "1.weight has shape (512, 392), the milestone's is (512, 784)"]


def test_only_a_batchnorm_after_a_conv_may_be_folded():
    from tinytorch.core.layers import Linear, ReLU, Sequential
    from tinytorch.core.spatial import BatchNorm2d, Conv2d

    model = Sequential(Conv2d(3, 4, 3), BatchNorm2d(4), ReLU(), BatchNorm2d(4), Sequential(Conv2d(4, 4, 1), BatchNorm2d(4)),
                       Linear(4, 2))
    assert folded_batchnorms(model) == {"1", "4.1"}
    reference = model.state_dict()
    folded = {k: v for k, v in reference.items() if not k.startswith(("1.", "4.1."))}
    assert check_architecture(folded, reference, folded_batchnorms(model)) == []
    assert check_architecture({k: v for k, v in folded.items() if not k.startswith("3.")}, reference,
                              folded_batchnorms(model))[0] == "3.weight is missing"
    with pytest.raises(SubmissionError, match="the events are"):
        get_event("imagenet")
    assert {"mnist", "cifar10-closed", "cifar10-open", "tinygpt"} <= set(EVENTS)


def test_submit_writes_every_file_with_its_checksum(setting, honest):
    manifest = json.loads((honest / MANIFEST).read_text())
    assert manifest["format"] == "tinytorch-olympics-submission" and manifest["version"] == 1
    for name in ("model.safetensors", "predictions.npy", "baseline.safetensors", "baseline_predictions.npy",
                 "system.json", "logs/mlperf_log_summary.txt", "logs/mlperf_log_detail.txt",
                 "logs/mlperf_log_accuracy.json", "logs/result.json", "logs/report.md", "logs/latency.png"):
        assert manifest["files"][name] == sha256_file(honest / name), name
    _, labels = milestone_test_split("mnist", setting.data)
    predictions = np.load(honest / "predictions.npy", allow_pickle=False)
    assert predictions.shape == labels.shape and manifest["claims"]["accuracy"] == np.mean(predictions == labels)
    assert not any("label" in name for name in manifest["files"]), "held-out labels are never in a submission"
    assert manifest["claims"]["state_bytes"] == (784 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10) * 4
    assert manifest["claims"]["file_bytes"] == (honest / "model.safetensors").stat().st_size
    assert json.loads((honest / "system.json").read_text())["environment"]["cores"] >= 1
    with pytest.raises(SubmissionError, match="already holds a submission"):
        submit("mnist", setting.baseline, honest, baseline=setting.baseline, data=setting.data, root=ROOT)


def test_an_honest_submission_is_valid(setting, honest):
    verdict = validate(honest, data=setting.data, baseline=setting.baseline, **VALIDATE)
    assert verdict.ok, failed(verdict)
    assert [c.name for c in verdict.checks] == ["format", "checksums", "accuracy", "baseline", "rules",
                                                "TEST01 outputs", "TEST01 latency"]
    assert verdict.measured["accuracy"] == json.loads((honest / MANIFEST).read_text())["claims"]["accuracy"]


def test_a_tampered_file_fails_its_checksum(setting, copy):
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (copy / "model.safetensors").write_bytes(bytes(data))
    verdict = validate(copy, data=setting.data, baseline=setting.baseline, **VALIDATE)
    assert "model.safetensors has SHA-256" in failed(verdict)["checksums"]
    (copy / "logs" / "report.md").unlink()
    assert "logs/report.md is listed in the manifest but missing" in failed(validate(copy, data=setting.data, **VALIDATE))["checksums"]


def test_an_accuracy_claim_that_does_not_match_fails(setting, copy):
    rewrite_manifest(copy, lambda m: m["claims"].update(accuracy=m["claims"]["accuracy"] + 0.01))
    message = failed(validate(copy, data=setting.data, baseline=setting.baseline, **VALIDATE))["accuracy"]
    assert "the manifest claims accuracy" in message and "against the held-out labels gives" in message


def test_labels_come_from_the_validator_not_the_submission(setting, copy, tmp_path):
    from tests.modules.fixtures_data import write_mnist
    from tinytorch.core import dataloader

    other = write_mnist(tmp_path / "other", train_size=10, test_size=120, seed=9)  # other labels, same size
    with pytest.MonkeyPatch.context() as patch:
        for name, checksums in other.checksums.items():
            patch.setitem(dataloader.MNIST_FILES, name, checksums)
        verdict = validate(copy, data=tmp_path / "other", **VALIDATE)
    assert "accuracy" in failed(verdict)


def test_forged_predictions_with_fresh_checksums_fail_test01(setting, copy):
    predictions = np.load(copy / "predictions.npy")
    forged = (predictions + 1) % 10
    forged[::2] = predictions[::2]  # half of them changed
    np.save(copy / "predictions.npy", forged)
    accuracy = float(np.mean(forged == milestone_test_split("mnist", setting.data)[1]))

    def consistent(manifest):
        manifest["files"]["predictions.npy"] = sha256_file(copy / "predictions.npy")
        manifest["claims"]["accuracy"] = accuracy

    rewrite_manifest(copy, consistent)
    message = failed(validate(copy, data=setting.data, baseline=setting.baseline, **VALIDATE))["TEST01 outputs"]
    assert "re-run samples predict another class than the predictions file" in message


def test_a_wrong_architecture_fails_the_closed_division(setting, tmp_path):
    manifest = submit("mnist", setting.narrow, tmp_path / "narrow", builder=setting.narrow_builder,
                      baseline=setting.baseline, data=setting.data, root=ROOT, submitter="bob", settings=SETTINGS)
    message = failed(validate(manifest.parent, data=setting.data, baseline=setting.baseline, **VALIDATE))["rules"]
    assert "architecture: 1.weight has shape (32, 784), the milestone's is (512, 784)" in message
    assert "5.weight is missing" in message


def test_accuracy_below_99_percent_of_the_baseline_fails(setting, tmp_path):
    from tinytorch.core.benchmarking import import_builder

    model = import_builder("milestones/mnist.py:build_mlp", ROOT)()
    load_checkpoint(setting.baseline, model)
    noise = np.random.default_rng(0)
    model.load_state_dict({k: v + noise.standard_normal(v.shape).astype(v.dtype) * 0.2 for k, v in model.state_dict().items()})
    damaged = save_checkpoint(tmp_path / "damaged.safetensors", model)
    manifest = submit("mnist", damaged, tmp_path / "damaged", baseline=setting.baseline, data=setting.data, root=ROOT,
                      settings=SETTINGS)
    message = failed(validate(manifest.parent, data=setting.data, baseline=setting.baseline, **VALIDATE))["accuracy"]
    assert "is below 99% of the baseline's" in message


def test_a_latency_claim_far_from_the_measurement_fails(setting, copy):
    rewrite_manifest(copy, lambda m: m["claims"].update(p90_ms=m["claims"]["p90_ms"] / 10))
    message = failed(validate(copy, data=setting.data, baseline=setting.baseline, **VALIDATE))["TEST01 latency"]
    assert "not within 50%" in message
    assert latency_within(1.09, 1.0, 0.10) and not latency_within(1.11, 1.0, 0.10) and not latency_within(0.89, 1.0, 0.10)


def test_a_baseline_other_than_the_events_fails(setting, copy, tmp_path):
    other = rounded_copy(setting, tmp_path / "other_baseline.safetensors")
    assert "is not the event's" in failed(validate(copy, data=setting.data, baseline=other, **VALIDATE))["baseline"]


def test_rerun_compares_outputs_with_the_accuracy_log(setting, honest):
    from tinytorch.core.benchmarking import SystemUnderTest

    inputs, _ = milestone_test_split("mnist", setting.data)
    system = SystemUnderTest(lambda x: np.zeros((len(x), 10), np.float32))
    problems = rerun_outputs(system, inputs, np.zeros(len(inputs), int), [0, 1, 2], outputs=np.ones((len(inputs), 10)))
    assert problems == ["3 of 3 re-run samples give other outputs than the accuracy log (e.g. sample 0)"]


def test_the_leaderboard_ranks_only_valid_submissions(setting, honest, copy, tmp_path):
    second = submit("mnist", setting.baseline, tmp_path / "float32", baseline=setting.baseline, data=setting.data,
                    root=ROOT, submitter="cy", settings=SETTINGS).parent
    (copy / "predictions.npy").write_bytes(b"tampered")
    verdicts = [validate(folder, data=setting.data, baseline=setting.baseline, **VALIDATE) for folder in (honest, second, copy)]
    ranking = rank_submissions(verdicts)
    assert {v.manifest["submitter"] for v in ranking["mnist"]} == {"ada", "cy"}
    p90s = [v.measured["p90_ms"] for v in ranking["mnist"]]
    assert p90s == sorted(p90s), "fastest re-measured p90 first"
    rows, page = write_leaderboard(verdicts, tmp_path / "board.html")
    text = page.read_text()
    assert "<td>ada</td>" in text and "<td>cy</td>" in text and "Not ranked" in text and "predictions.npy" in text
    assert [row["rank"] for row in rows] == [1, 2, None]
    empty = Validation(tmp_path)
    assert not empty.ok, "a validation with no checks is not a pass"


# ---- the TinyGPT event: tokens/s with identical greedy output -------------------------------------------

TINY_GPT = {"block_size": 16, "vocab_size": 11, "n_layer": 1, "n_head": 2, "n_embd": 16, "dropout": 0.0, "bias": False}
GENERATION = {"new_tokens": 24, "prompts": 2, "prompt_length": 6, "repeats": 3}


def write_tiny_gpt(path, seed=0, noise=0.5):
    """A random-weight GPT (module 13) saved as milestones/tinygpt.py saves its checkpoint.

    Weights of scale `noise` (not the tiny initial ones) make greedy decoding decisive, so that a
    perturbed copy writes other tokens and the KV-cache entry writes the same ones.
    """
    from dataclasses import asdict

    from tinytorch.core.optimizers import AdamW
    from tinytorch.core.transformer import GPT, GPTConfig

    config = GPTConfig(**TINY_GPT)
    model = GPT(config)
    rng = np.random.default_rng(seed)
    model.load_state_dict({k: (v + noise * rng.standard_normal(v.shape)).astype(v.dtype)
                           for k, v in model.state_dict().items()})
    optimizer = AdamW(model.parameter_groups(0.1), lr=1e-3)
    return save_checkpoint(path, model, optimizer, epoch=0, history=[],
                           extra={"milestone": "tinygpt", "val_loss": 2.4, "vocabulary": "\n abcdefghi",
                                  "config": asdict(config)})


def perturbed_copy(source, path, scale=0.3, seed=1):
    """A copy of a tinygpt checkpoint whose weights carry noise of scale `scale`: it writes other tokens."""
    state = load_checkpoint(source)
    rng = np.random.default_rng(seed)
    state["model"] = {k: (v + scale * rng.standard_normal(v.shape)).astype(v.dtype) for k, v in state["model"].items()}
    return save_state(path, state)


@pytest.fixture(scope="module")
def gpt_setting(tmp_path_factory):
    from tinytorch.olympics import GenerationSettings

    folder = tmp_path_factory.mktemp("tinygpt")
    baseline = write_tiny_gpt(folder / "tinygpt.safetensors")
    generation = GenerationSettings(**GENERATION)
    cached = submit("tinygpt", baseline, folder / "cached", builder="tinytorch.olympics:build_cached_gpt",
                    baseline=baseline, root=ROOT, submitter="kv", generation=generation)
    return {"folder": folder, "baseline": baseline, "generation": generation, "cached": cached.parent}


def validate_gpt(gpt_setting, folder, **changes):
    options = {"root": ROOT, "baseline": gpt_setting["baseline"], "seed": 3, "latency_tolerance": 0.5,
               "generation": gpt_setting["generation"], **changes}
    return validate(folder, **options)


def test_a_kv_cache_entry_with_identical_tokens_is_valid(gpt_setting):
    folder = gpt_setting["cached"]
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["event"] == "tinygpt" and manifest["model"]["builder"] == "tinytorch.olympics:build_cached_gpt"
    for name in ("model.safetensors", "baseline.safetensors", "system.json", "logs/result.json"):
        assert manifest["files"][name] == sha256_file(folder / name), name
    result = json.loads((folder / "logs" / "result.json").read_text())
    assert result["identical_tokens"] and len(result["tokens_per_s_repeats"]["submission"]) == GENERATION["repeats"]
    assert manifest["claims"]["tokens_per_s"] == np.median(result["tokens_per_s_repeats"]["submission"])
    verdict = validate_gpt(gpt_setting, folder)
    assert verdict.ok, failed(verdict)
    assert [c.name for c in verdict.checks] == ["format", "checksums", "baseline", "rules", "tokens", "tokens/s"]
    assert "2 prompts drawn by the validator, 24 greedy tokens each: identical" in verdict.checks[4].message
    assert verdict.measured["tokens_per_s"] > 0 and verdict.measured["baseline_tokens_per_s"] > 0


def test_the_tinygpt_event_its_prompts_and_its_token_comparison():
    from tinytorch.core.transformer import GPT, GPTConfig
    from tinytorch.olympics import (
        GenerationSettings,
        build_cached_gpt,
        draw_prompts,
        first_difference,
        greedy_tokens,
    )

    assert first_difference([4, 5, 6], [4, 5, 7]) == 2 and first_difference([4], [4]) is None
    assert first_difference([4, 5], [4]) == 1, "a shorter output differs where it ends"
    event = get_event("tinygpt")
    assert event.kind == "generation" and event.generation.new_tokens == 200 and "higher is better" in event.ranked_by
    rules = " ".join(event.rules)
    assert "identical" in rules and "top_k=1" in rules and "within 10%" in rules and "SHA-256" in rules
    settings = GenerationSettings(new_tokens=5, prompts=4, prompt_length=3)
    a, b = draw_prompts(11, settings, seed=1), draw_prompts(11, settings, seed=2)
    assert a.shape == (4, 3) and a.min() >= 0 and a.max() < 11 and not np.array_equal(a, b)
    model = build_cached_gpt(GPTConfig(**TINY_GPT)).eval()
    expected = np.asarray(GPT.generate(model, a[:1], 5, top_k=1).data)[0, 3:]  # module 13's decoding, no cache
    assert np.array_equal(greedy_tokens(model, a[0], 5), expected)
    with pytest.raises(ValueError, match="repeats must be at least 2"):
        GenerationSettings(repeats=1)


def test_each_timed_generation_run_lasts_its_minimum_duration():
    """A timed run repeats its prompts until min_repeat_s has passed, and counts every token it decoded."""
    from tinytorch.olympics import GenerationSettings, measure_tokens_per_second

    class Counting:
        def __init__(self):
            self.calls = 0

        def generate(self, idx, new_tokens, temperature=1.0, top_k=None):
            self.calls += 1
            time.sleep(0.001)
            return np.concatenate([idx.numpy(), np.zeros((1, new_tokens), np.int64)], axis=1)

    models = {"submission": Counting(), "baseline": Counting()}
    prompts = np.array([[1, 2], [3, 4]])
    rates = measure_tokens_per_second(models, prompts, 3, repeats=2, min_repeat_s=0.05)
    assert all(len(r) == 2 for r in rates.values())
    assert all(m.calls >= 2 * 2 * 2 and m.calls % 2 == 0 for m in models.values()), "whole passes, several per repeat"
    assert all(0 < r < 2 * 3 / 0.001 for r in rates["submission"]), "tokens over the time of all the passes"
    once = {"submission": Counting()}
    measure_tokens_per_second(once, prompts, 3, repeats=2)
    assert once["submission"].calls == 4, "without a minimum duration: one pass per repeat"
    assert GenerationSettings().min_repeat_s == 0.1
    with pytest.raises(ValueError, match=r"min_repeat_s must be a number of seconds in \[0, 60\)"):
        GenerationSettings(min_repeat_s=-1)


def test_an_entry_whose_tokens_differ_fails_naming_the_prompt_and_position(gpt_setting, tmp_path):
    changed = perturbed_copy(gpt_setting["baseline"], tmp_path / "perturbed.safetensors")
    manifest = submit("tinygpt", changed, tmp_path / "perturbed", baseline=gpt_setting["baseline"], root=ROOT,
                      generation=gpt_setting["generation"])
    assert json.loads(manifest.read_text())["claims"]["identical_tokens"] is False
    verdict = validate_gpt(gpt_setting, manifest.parent)
    message = failed(verdict)["tokens"]
    assert "prompt 0 " in message and "the submission's tokens differ from the baseline's at position" in message
    assert "of 24 new tokens (baseline token" in message
    assert "tokens/s" not in {c.name for c in verdict.checks}, "a wrong answer is not timed"


def test_a_tampered_tinygpt_artifact_fails_its_checksum(gpt_setting, tmp_path):
    copy = shutil.copytree(gpt_setting["cached"], tmp_path / "entry")
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (copy / "model.safetensors").write_bytes(bytes(data))
    assert "model.safetensors has SHA-256" in failed(validate_gpt(gpt_setting, copy))["checksums"]


def test_a_false_tokens_per_second_claim_fails(gpt_setting, tmp_path):
    copy = shutil.copytree(gpt_setting["cached"], tmp_path / "entry")
    rewrite_manifest(copy, lambda m: m["claims"].update(tokens_per_s=m["claims"]["tokens_per_s"] * 10))
    message = failed(validate_gpt(gpt_setting, copy, attempts=2))["tokens/s"]
    assert "not within 50% (2 attempt(s))" in message and "claimed" in message
    rewrite_manifest(copy, lambda m: m["claims"].update(new_tokens=200))
    assert "the claims are for 200 new tokens; this validation decodes 24" in failed(validate_gpt(gpt_setting, copy))["rules"]


def test_the_leaderboard_ranks_tinygpt_by_measured_tokens_per_second(gpt_setting, tmp_path):
    plain = submit("tinygpt", gpt_setting["baseline"], tmp_path / "plain", baseline=gpt_setting["baseline"], root=ROOT,
                   submitter="plain", generation=gpt_setting["generation"]).parent
    verdicts = [validate_gpt(gpt_setting, folder) for folder in (plain, gpt_setting["cached"])]
    assert all(v.ok for v in verdicts), [failed(v) for v in verdicts]
    ranking = rank_submissions(verdicts)["tinygpt"]
    rates = [v.measured["tokens_per_s"] for v in ranking]
    assert rates == sorted(rates, reverse=True), "highest re-measured tokens/s first"
    rows, page = write_leaderboard(verdicts, tmp_path / "board.html")
    assert [row["rank"] for row in rows] == [1, 2] and rows[0]["accuracy"] is None
    assert "<td>kv</td>" in page.read_text() and "tokens/s" in page.read_text()
