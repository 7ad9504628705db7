"""The language-path milestones (attention, tinygpt) run as scripts, meet their bars, and fail honestly.

Each milestone runs in its `--quick` mode as a subprocess, the way `tito milestone run` starts
it: the project on PYTHONPATH, the project root as the working directory. The text that
tinygpt trains on is written by the test into a temporary folder; the real Tiny Shakespeare is
never needed.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]

WORDS = ("the", "king", "queen", "doth", "speak", "of", "love", "and", "war", "my", "lord", "good",
         "night", "sweet", "prince", "thou", "art", "here", "come", "away")


def run_milestone(name, *args, data_folder=None):
    """Run milestones/<name>.py from the project root with the project importable; returns the result."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # These models' matrices are small: one BLAS thread is as fast on an idle machine and many
    # times faster on a busy one, where threads that wait for each other spin instead of working.
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.pop("TINYTORCH_DATA", None)
    if data_folder is not None:
        env["TINYTORCH_DATA"] = str(data_folder)
    return subprocess.run(
        [sys.executable, str(ROOT / "milestones" / f"{name}.py"), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )


def write_play(path, characters=24_000, seed=0):
    """A text with structure a small model can learn: lines of words from a small vocabulary.

    Within a word the next character is nearly certain, so a model that reads context beats
    the character frequencies (the quick bar) by a wide margin.
    """
    rng = np.random.default_rng(seed)
    lines, size = [], 0
    while size < characters:
        speaker = ("KING", "QUEEN", "PRINCE")[rng.integers(3)]
        words = " ".join(WORDS[i] for i in rng.integers(0, len(WORDS), size=rng.integers(4, 9)))
        line = f"{speaker}:\n{words.capitalize()}.\n\n"
        lines.append(line)
        size += len(line)
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_attention_quick_reverses_held_out_sequences():
    done = run_milestone("attention", "--quick")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "Milestone attention: A transformer learns to reverse sequences (Vaswani 2017) (2017)" in out
    assert "Ashish Vaswani" in out and "bar:  100% accuracy on held-out sequences  [quick mode]" in out
    assert "held out: 1000 sequences drawn with seed 10000" in out
    assert "measured: held-out exact-sequence accuracy = 100.00% of 1000  |  bar: 100%  |  ok" in out
    assert "result: bar met" in out


def test_attention_untrained_misses_the_bar():
    done = run_milestone("attention", "--quick", "--steps", "0")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "measured: held-out exact-sequence accuracy" in done.stdout and "MISSED" in done.stdout
    assert "result: bar MISSED (held-out exact-sequence accuracy)" in done.stdout


def test_tinygpt_quick_beats_the_character_frequencies(tmp_path):
    text = write_play(tmp_path / "play.txt")
    out_dir = tmp_path / "run"
    done = run_milestone("tinygpt", "--quick", "--data", str(text), "--out", str(out_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "Milestone tinygpt: A character-level GPT on Tiny Shakespeare (2018)" in out
    assert "bar:  validation loss <= 1.80 nats per character  [quick mode]" in out
    assert f"data: {text}," in out
    assert "iter   150/150  train loss" in out and "ms/iter" in out
    assert "measured: validation loss (quick) = " in out and "(character frequencies)  |  ok" in out
    assert "--- sample: 200 characters, temperature 0.8 ---" in out
    assert "result: bar met" in out

    sample = out.split("temperature 0.8 ---\n", 1)[1].split("\n--- end of sample", 1)[0]
    assert len(sample) == 200 and set(sample) <= set(text.read_text())

    from tinytorch.core.training import load_checkpoint
    from tinytorch.core.transformer import GPT, GPTConfig

    saved = load_checkpoint(out_dir / "tinygpt.safetensors")
    model = GPT(GPTConfig(**saved["extra"]["config"]))
    checkpoint = load_checkpoint(out_dir / "tinygpt.safetensors", model=model)  # strict: every weight fits
    np.testing.assert_array_equal(model.lm_head.weight.data, checkpoint["model"]["lm_head.weight"].data)
    assert checkpoint["epoch"] == 150
    assert checkpoint["extra"]["vocabulary"] == "".join(sorted(set(text.read_text())))
    assert checkpoint["extra"]["config"]["n_layer"] == 2
    assert [record["iter"] for record in checkpoint["history"]] == [25, 50, 75, 100, 125, 150]
    measured = out.split("measured: validation loss (quick) = ", 1)[1].split(" ", 1)[0]
    assert f"{checkpoint['extra']['val_loss']:.3f}" == measured


def test_tinygpt_untrained_misses_the_bar(tmp_path):
    text = write_play(tmp_path / "play.txt")
    done = run_milestone("tinygpt", "--quick", "--iters", "0", "--data", str(text), "--out", str(tmp_path))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "iter " not in done.stdout
    assert "result: bar MISSED (validation loss (quick))" in done.stdout


def test_tinygpt_without_data_says_where_to_put_it(tmp_path):
    done = run_milestone("tinygpt", "--quick", data_folder=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "tinyshakespeare" in done.stderr and str(tmp_path) in done.stderr
    assert "TINYTORCH_DATA" in done.stderr and "--download" in done.stderr and "--data FILE" in done.stderr
    assert "Traceback" not in done.stderr
    assert "iter " not in done.stdout, "nothing may train on substitute data"


def test_tinygpt_with_a_missing_data_file_says_so(tmp_path):
    missing = tmp_path / "nowhere.txt"
    done = run_milestone("tinygpt", "--quick", "--data", str(missing))
    assert done.returncode == 2
    assert f"--data {missing} is not a file" in done.stderr and "Traceback" not in done.stderr


def test_tinygpt_refuses_a_text_too_short_for_one_window(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("to be or not to be\n" * 5, encoding="utf-8")
    done = run_milestone("tinygpt", "--quick", "--data", str(short))
    assert done.returncode == 2
    assert "is too short" in done.stderr and "a window needs 33" in done.stderr
