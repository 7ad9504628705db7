"""`tito olympics events | submit | validate | leaderboard`, through tito.cli.main, on fixture data.

Every way a submission can be tampered with fails `tito olympics validate` with exit code 1 and
a message that says what; the honest submission passes.
"""

import json
import shutil

import numpy as np
import pytest

from tests.modules.fixtures_olympics import olympics_setting, rounded_copy
from tinytorch.olympics import MANIFEST, sha256_file
from tito.cli import main

FAST = ["--duration", "0.1", "--queries", "40", "--warmup", "3"]


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    with olympics_setting(tmp_path_factory.mktemp("olympics_cli")) as value:
        yield value


def validation_flags(setting):
    return ["--data", str(setting.data), "--baseline", str(setting.baseline), "--seed", "0",
            "--rerun-samples", "24", "--latency-tolerance", "0.5"]


@pytest.fixture(scope="module")
def submitted(setting):
    entry = rounded_copy(setting, setting.folder / "rounded.safetensors")
    out = setting.folder / "entry"
    code = main(["olympics", "submit", "mnist", "--model", str(entry), "--baseline", str(setting.baseline),
                 "--data", str(setting.data), "--out", str(out), "--submitter", "ada", *FAST])
    assert code == 0
    return out


@pytest.fixture
def copy(submitted, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(submitted, target)
    return target


def validate(setting, folder, capsys):
    code = main(["olympics", "validate", str(folder), *validation_flags(setting)])
    return code, capsys.readouterr().out


def edit_manifest(folder, change):
    manifest = json.loads((folder / MANIFEST).read_text())
    change(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest))


def test_events_lists_every_event_with_its_rules(capsys):
    assert main(["olympics", "events"]) == 0
    printed = capsys.readouterr().out
    assert "mnist" in printed and "cifar10-closed" in printed and "cifar10-open" in printed
    assert "Closed division: the milestone's architecture" in printed and "99%" in printed


def test_submit_writes_the_folder_and_validate_accepts_it(setting, submitted, capsys):
    assert (submitted / MANIFEST).is_file() and (submitted / "logs" / "mlperf_log_summary.txt").is_file()
    code, printed = validate(setting, submitted, capsys)
    assert code == 0, printed
    assert "VALID" in printed and "TEST01 outputs" in printed and "FAIL" not in printed


def test_submit_refuses_a_missing_model_and_an_unknown_event(setting, tmp_path, capsys):
    assert main(["olympics", "submit", "mnist", "--model", str(tmp_path / "none.safetensors"),
                 "--baseline", str(setting.baseline), "--data", str(setting.data), "--out", str(tmp_path / "x")]) == 1
    assert "no model checkpoint at" in capsys.readouterr().out
    assert main(["olympics", "submit", "imagenet", "--data", str(setting.data)]) == 1
    assert "no event 'imagenet'" in capsys.readouterr().out


def test_validate_without_the_held_out_labels_says_how_to_get_them(setting, submitted, tmp_path, capsys):
    assert main(["olympics", "validate", str(submitted), "--data", str(tmp_path / "empty")]) == 1
    assert "held-out labels" in capsys.readouterr().out


def test_a_changed_byte_in_the_model_fails_the_checksum(setting, copy, capsys):
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / "model.safetensors").write_bytes(bytes(data))
    code, printed = validate(setting, copy, capsys)
    assert code == 1 and "FAIL checksums: model.safetensors has SHA-256" in printed and "INVALID" in printed


def test_a_missing_file_fails(setting, copy, capsys):
    (copy / "baseline_predictions.npy").unlink()
    code, printed = validate(setting, copy, capsys)
    assert code == 1 and "baseline_predictions.npy is listed in the manifest but missing" in printed


def test_an_inflated_accuracy_claim_fails(setting, copy, capsys):
    edit_manifest(copy, lambda m: m["claims"].update(accuracy=1.0 + 0.5))
    code, printed = validate(setting, copy, capsys)
    assert code == 1 and "FAIL accuracy: the manifest claims accuracy 1.5" in printed


def test_forged_predictions_fail_test01_even_with_matching_checksums(setting, copy, capsys):
    predictions = np.load(copy / "predictions.npy")
    np.save(copy / "predictions.npy", (predictions + 1) % 10)

    def cover_up(manifest):
        manifest["files"]["predictions.npy"] = sha256_file(copy / "predictions.npy")
        manifest["claims"]["accuracy"] = 0.0

    edit_manifest(copy, cover_up)
    code, printed = validate(setting, copy, capsys)
    assert code == 1 and "FAIL TEST01 outputs: 24 of 24 re-run samples predict another class" in printed


def test_a_wrong_architecture_fails(setting, tmp_path, capsys):
    out = tmp_path / "narrow"
    assert main(["olympics", "submit", "mnist", "--model", str(setting.narrow), "--builder", setting.narrow_builder,
                 "--baseline", str(setting.baseline), "--data", str(setting.data), "--out", str(out), *FAST]) == 0
    code, printed = validate(setting, out, capsys)
    assert code == 1 and "FAIL rules: architecture: 1.weight has shape (32, 784), the milestone's is (512, 784)" in printed


def test_changed_builder_code_fails(setting, tmp_path, capsys):
    out = tmp_path / "narrow"
    builder_file = tmp_path / "narrow_builder.py"
    shutil.copy(setting.narrow_builder.split(":")[0], builder_file)
    assert main(["olympics", "submit", "mnist", "--model", str(setting.narrow), "--builder", f"{builder_file}:build",
                 "--baseline", str(setting.baseline), "--data", str(setting.data), "--out", str(out), *FAST]) == 0
    builder_file.write_text(builder_file.read_text() + "\n# changed after submitting\n")
    code, printed = validate(setting, out, capsys)
    assert code == 1 and "differs from the code the submission was made with" in printed


def test_a_too_good_latency_claim_fails(setting, copy, capsys):
    edit_manifest(copy, lambda m: m["claims"].update(p90_ms=m["claims"]["p90_ms"] / 20))
    code, printed = validate(setting, copy, capsys)
    assert code == 1 and "FAIL TEST01 latency" in printed and "not within 50%" in printed


def test_a_foreign_baseline_fails(setting, copy, tmp_path, capsys):
    other = rounded_copy(setting, tmp_path / "other.safetensors")
    code = main(["olympics", "validate", str(copy), "--data", str(setting.data), "--baseline", str(other),
                 "--seed", "0", "--latency-tolerance", "0.5"])
    assert code == 1 and "is not the event's float32 checkpoint" in capsys.readouterr().out


def test_not_a_submission_fails_with_a_message(setting, tmp_path, capsys):
    code, printed = validate(setting, tmp_path, capsys)
    assert code == 1 and "no readable manifest.json" in printed
    (tmp_path / MANIFEST).write_text(json.dumps({"format": "tinytorch-olympics-submission", "version": 7}))
    code, printed = validate(setting, tmp_path, capsys)
    assert code == 1 and "manifest version 7" in printed
    (tmp_path / MANIFEST).write_text(json.dumps({"format": "tinytorch-olympics-submission", "version": 1,
                                                 "event": "mnist", "files": {"a": "b"}, "model": "not a table"}))
    code, printed = validate(setting, tmp_path, capsys)
    assert code == 1 and "FAIL format: the manifest or a file it names is malformed" in printed


def test_leaderboard_ranks_valid_submissions_and_writes_html(setting, submitted, copy, tmp_path, capsys):
    (copy / "predictions.npy").write_bytes(b"not the predictions")
    page = tmp_path / "board.html"
    code = main(["olympics", "leaderboard", str(submitted), str(copy), "--html", str(page), *validation_flags(setting)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "ada" in printed and "not ranked" in printed
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and "<td>ada</td>" in text and "Not ranked" in text


# ---- the tinygpt event through the CLI -----------------------------------------------------------------

GENERATION_FLAGS = ["--new-tokens", "20", "--prompts", "2", "--prompt-length", "5", "--repeats", "3"]


@pytest.fixture(scope="module")
def gpt_entry(tmp_path_factory):
    from tests.modules.test_20_capstone import write_tiny_gpt

    folder = tmp_path_factory.mktemp("olympics_tinygpt")
    baseline = write_tiny_gpt(folder / "tinygpt.safetensors")
    out = folder / "kv"
    code = main(["olympics", "submit", "tinygpt", "--model", str(baseline), "--builder",
                 "tinytorch.olympics:build_cached_gpt", "--baseline", str(baseline), "--out", str(out),
                 "--submitter", "kv", *GENERATION_FLAGS])
    assert code == 0
    return baseline, out


def validate_gpt(baseline, folder, capsys, *extra):
    code = main(["olympics", "validate", str(folder), "--baseline", str(baseline), "--seed", "5",
                 "--latency-tolerance", "0.5", *GENERATION_FLAGS, *extra])
    return code, capsys.readouterr().out


def test_events_lists_the_tinygpt_event(capsys):
    assert main(["olympics", "events"]) == 0
    printed = capsys.readouterr().out
    assert "tinygpt: TinyGPT tokens/s with identical greedy output" in printed and "top_k=1" in printed


def test_a_kv_cache_tinygpt_entry_validates(gpt_entry, capsys):
    baseline, folder = gpt_entry
    code, printed = validate_gpt(baseline, folder, capsys)
    assert code == 0, printed
    assert "ok   tokens: 2 prompts drawn by the validator, 20 greedy tokens each" in printed
    assert "ok   tokens/s: re-measured" in printed and "VALID" in printed and "FAIL" not in printed


def test_a_tinygpt_entry_with_other_tokens_fails(gpt_entry, tmp_path, capsys):
    from tests.modules.test_20_capstone import perturbed_copy

    baseline, _ = gpt_entry
    changed = perturbed_copy(baseline, tmp_path / "changed.safetensors")
    out = tmp_path / "changed"
    assert main(["olympics", "submit", "tinygpt", "--model", str(changed), "--baseline", str(baseline),
                 "--out", str(out), *GENERATION_FLAGS]) == 0
    code, printed = validate_gpt(baseline, out, capsys)
    assert code == 1 and "FAIL tokens: prompt 0 " in printed and "differ from the baseline's at position" in printed


def test_a_tampered_or_overclaimed_tinygpt_entry_fails(gpt_entry, tmp_path, capsys):
    baseline, folder = gpt_entry
    copy = shutil.copytree(folder, tmp_path / "copy")
    edit_manifest(copy, lambda m: m["claims"].update(tokens_per_s=m["claims"]["tokens_per_s"] * 5))
    code, printed = validate_gpt(baseline, copy, capsys, "--attempts", "1")
    assert code == 1 and "FAIL tokens/s" in printed and "not within 50%" in printed
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / "model.safetensors").write_bytes(bytes(data))
    code, printed = validate_gpt(baseline, copy, capsys)
    assert code == 1 and "FAIL checksums: model.safetensors has SHA-256" in printed


def test_the_leaderboard_shows_tinygpt_tokens_per_second(gpt_entry, tmp_path, capsys):
    baseline, folder = gpt_entry
    page = tmp_path / "board.html"
    code = main(["olympics", "leaderboard", str(folder), "--html", str(page), "--baseline", str(baseline),
                 "--seed", "5", "--latency-tolerance", "0.5", *GENERATION_FLAGS])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "tinygpt" in printed and "kv" in printed and "tokens/s" in printed
    assert "<td>kv</td>" in page.read_text()
