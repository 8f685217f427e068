"""A whole `kedro run` runs monitoring after the inference run whose outputs it reads."""

from __future__ import annotations

from har_mlops.pipeline_registry import register_pipelines


def test_monitoring_reads_inference_outputs_after_they_are_written():
    pipelines = register_pipelines()
    order = [node.name for node in pipelines["__default__"].nodes]
    # predict_recordings writes the windows that `inference.windows` reads back from disk,
    # where a fresh clone has none; report_run closes that run.
    written = max(order.index(name) for name in ("predict_recordings", "report_run"))
    for node in pipelines["monitoring"].nodes:
        if any(name.startswith("inference.") for name in node.inputs):
            assert order.index(node.name) > written, node.name
