"""The soak runs: their verdict, their memory samples and their page.

`python benchmarks/soak.py` trains for 100,000 steps three times, sampling
the resident memory, and `docs/soak.md` is written from its result files
(`python benchmarks/soak.py --docs`). The slow test runs the soaks again and
checks that memory stays flat: `python -m pytest -q -m slow test_soak.py`.
"""

import subprocess
import sys

import pytest

from benchmarks import soak


def series(memory, steps=soak.STEPS, every=soak.EVERY):
    """Samples `[step, seconds, MiB]` of `memory(step)`, every `every` steps."""
    return [[step, step / 1000, memory(step)] for step in range(every, steps + 1, every)]


def after_warmup(step):
    return max(step, soak.WARMUP * soak.STEPS) - soak.WARMUP * soak.STEPS


def test_the_warm_up_is_left_out_of_the_verdict():
    # 500 MiB rising to 700 over the warm-up, then 700 and a tenth of a MiB more
    # every 3,000 steps.
    warming = series(lambda step: 500 + 200 * min(step, 10_000) / 10_000
                     + 0.1 * (step % 3000 == 0))
    summary = soak.summarize(warming, soak.STEPS)
    assert (summary["first_mb"], summary["min_mb"], summary["max_mb"]) == pytest.approx(
        (700, 700, 700.1))
    assert summary["spread"] == pytest.approx(0.1 / 700)
    assert summary["flat"]


@pytest.mark.parametrize("start, end", [(1000, 1052), (1052, 1000)])
def test_a_change_of_more_than_five_percent_of_the_smallest_is_not_flat(start, end):
    # 52 MiB is 5.2 % of 1000 but 4.9 % of 1052: the spread is over the smallest.
    samples = series(lambda step: start + (end - start) * after_warmup(step) / 90_000)
    summary = soak.summarize(samples, soak.STEPS)
    assert summary["growth"] == pytest.approx(end / start - 1)
    assert summary["spread"] == pytest.approx(0.052)
    assert not summary["flat"]


def test_a_change_within_five_percent_is_flat():
    samples = series(lambda step: 1000 + 49 * after_warmup(step) / 90_000)
    summary = soak.summarize(samples, soak.STEPS)
    assert summary["growth"] == pytest.approx(0.049) and summary["flat"]


def test_a_run_without_samples_after_the_warm_up_is_refused():
    with pytest.raises(ValueError, match="No sample after the warm-up of 10000 steps"):
        soak.summarize(series(lambda step: 100.0, steps=5000), soak.STEPS)


def test_the_step_is_read_from_the_last_complete_line_of_the_clock(tmp_path):
    clock = tmp_path / "clock.txt"
    assert soak.last_step(clock) == 0
    clock.write_text("1 0.01\n")
    assert soak.last_step(clock) == 1
    clock.write_text("".join(f"{step} {step / 100:.6f}\n" for step in range(1, 500)) + "500 5.0")
    assert soak.last_step(clock) == 499


def record(samples, steps_done=soak.STEPS):
    return {"steps": soak.STEPS, "every": soak.EVERY, "warmup": soak.WARMUP,
            "seconds": 1200.0, "samples": samples, "steps_done": steps_done,
            "environment": {"cpus": 2, "machine": "x86_64", "python": "3.12.0",
                            "tensorflow": "2.21.0", "keras": "3.15.1"}}


def test_the_page_shows_each_run_and_its_verdict():
    flat = series(lambda step: 700 + 0.1 * (step % 30_000 == 0))
    # The command's samples fall a few steps after the multiples of 1,000.
    leaking = [[step + 3, seconds, 1000 + 60 * after_warmup(step) / 90_000]
               for step, seconds, _ in series(lambda step: 0)]
    text = soak.page({"importance": record(flat), "history": record(leaking)})
    assert (f"| importance | {soak.SOAKS['importance']} | 100,000 | 700.0 MiB | 700.0 MiB "
            "| 700.0 - 700.1 MiB | +0.00% | 0.01% | yes | 20 min |") in text
    assert (f"| history | {soak.SOAKS['history']} | 100,000 | 1000.0 MiB | 1060.0 MiB "
            "| 1000.0 - 1060.0 MiB | +6.00% | 6.00% | **no** | 20 min |") in text
    assert f"| approximate | {soak.SOAKS['approximate']} | not measured |" in text
    assert "| 30,000 | 700.1 | 1013.3 |" in text
    assert "| 100,000 | 700.0 | 1060.0 |" in text
    assert "2 CPU cores (x86_64)" in text and "TensorFlow 2.21.0" in text


def test_a_fit_soak_samples_the_end_of_every_epoch():
    measured = soak.fit_soak("importance", steps=40, every=20)
    assert measured["steps_done"] == 40
    assert [step for step, _, _ in measured["samples"]] == [20, 40]
    seconds = [s for _, s, _ in measured["samples"]]
    assert 0 < seconds[0] < seconds[1]


def test_the_command_soak_samples_after_the_last_step():
    # The thread never wakes before the command ends: the sample after the
    # last step is the only one.
    measured = soak.command_soak(steps=30, every=20, poll_seconds=3600)
    assert measured["steps_done"] == 30
    assert [step for step, _, _ in measured["samples"]] == [30]


def test_the_page_is_the_one_of_the_stored_results():
    assert soak.PAGE.read_text() == soak.page(soak.load_results()), (
        "regenerate with `python benchmarks/soak.py --docs`")


def test_every_stored_soak_ran_all_its_steps_and_stayed_flat():
    records = soak.load_results()
    assert list(records) == list(soak.SOAKS)
    for name, stored in records.items():
        assert stored["steps_done"] == soak.STEPS, name
        steps = [step for step, _, _ in stored["samples"]]
        assert len(steps) == soak.STEPS // soak.EVERY and steps[-1] == soak.STEPS, name
        assert soak.summarize(stored["samples"], soak.STEPS)["flat"], name


@pytest.mark.slow
def test_memory_stays_flat_over_100000_steps(tmp_path):
    subprocess.run([sys.executable, str(soak.ROOT / "benchmarks" / "soak.py"),
                    "--output", str(tmp_path)], check=True)
    records = soak.load_results(tmp_path)
    assert list(records) == list(soak.SOAKS)
    for name, measured in records.items():
        assert measured["steps_done"] == soak.STEPS, name
        summary = soak.summarize(measured["samples"], soak.STEPS)
        assert summary["flat"], (name, summary)
