"""Checkpoint 20 (Capstone: Torch Olympics): Can I build, optimize and submit a complete ML system?

Capability: submit the MNIST milestone's MLP (trained here on MNIST-format fixture files) to the
closed-division event as a folder of checksummed files, have the validator accept it without
trusting any of its figures, and see a tampered copy rejected with the reason.
"""

import shutil

from tests.modules.fixtures_olympics import ROOT, SETTINGS, olympics_setting
from tinytorch.olympics import submit, validate


def test_i_can_submit_a_result_that_others_can_trust(tmp_path):
    with olympics_setting(tmp_path) as setting:
        manifest = submit("mnist", setting.baseline, tmp_path / "entry", baseline=setting.baseline,
                          data=setting.data, root=ROOT, submitter="me", settings=SETTINGS)
        options = {"data": setting.data, "baseline": setting.baseline, "root": ROOT, "seed": 0,
                   "rerun_samples": 16, "latency_tolerance": 0.5}
        verdict = validate(manifest.parent, **options)
        assert verdict.ok, [(c.name, c.message) for c in verdict.failures()]
        assert verdict.measured["accuracy"] > 0.9

        tampered = shutil.copytree(manifest.parent, tmp_path / "tampered")
        (tampered / "predictions.npy").write_bytes((tampered / "baseline_predictions.npy").read_bytes()[:-1] + b"\x01")
        failures = {c.name: c.message for c in validate(tampered, **options).failures()}
        assert "predictions.npy has SHA-256" in failures["checksums"]
