"""The training report's summary states time to accuracy, epochs to accuracy and peak memory."""

from __future__ import annotations

from dlbench.report.training import _summary_table


def run(tta, epochs, rss=200 * 2**20):
    return {
        "step_time": {"median": 0.01, "p99": 0.02},
        "samples_per_s": 100.0,
        "epoch_time_s": 1.0,
        "target_accuracy": 0.9,
        "time_to_accuracy_s": tta,
        "epochs_to_accuracy": epochs,
        "peak_rss_bytes": rss,
        "final": {"test_accuracy": 0.91},
        "diagnosis": {"text": "good fit"},
    }


def test_summary_has_time_to_accuracy() -> None:
    doc = {
        "backends": {
            "torch": {"status": "ok", "runs": [run(12.0, 3), run(14.0, 5)]},
            "jax": {"status": "ok", "runs": [run(None, None), run(None, None)]},
            "tensorflow": {"status": "ok", "runs": [run(8.0, 2), run(None, None)]},
        }
    }
    html = _summary_table(doc)
    rows = {r.split("</td>")[0].split("<td>")[-1]: r for r in html.split("<tr>")[2:]}
    assert "13.0 s" in rows["torch"] or "13 s" in rows["torch"], rows["torch"]
    assert ">4.0<" in rows["torch"] and "200 MiB" in rows["torch"]
    assert "not reached" in rows["jax"]
    assert "(1/2 runs)" in rows["tensorflow"]
