"""What runs inside an instance process: the processor a service names, loaded once per instance
and then called from the instance's worker threads.

Two shapes: tensor processors (``tensorflow``, ``onnx``, ``pytorch``) answer ``predict(signature,
inputs, output_filter)`` and are reached by every protocol; body processors (``python``, ``pmml``,
``easyvision``, ``takes_body``) get the request body as it is and answer a body. Which one a service
gets, and its files, is decided at create by :mod:`pai_lab.serving.processors.catalog`."""

from __future__ import annotations

import os
from typing import Any

from pai_lab.serving.processors.base import CLASS_NAMES_FILE, ProcessorError, read_class_names
from pai_lab.serving.processors.python import PythonProcessor

__all__ = ["CLASS_NAMES_FILE", "ProcessorError", "PythonProcessor", "load", "read_class_names"]


def load(config: dict) -> Any:
    """The processor for a version's resolved form (``processor_kind`` and its files)."""
    kind = config["processor_kind"]
    # metadata.cpu: the gateway sets the instance's thread count for TensorFlow; the others follow it
    threads = int(os.environ.get("TF_NUM_INTRAOP_THREADS") or 0) or None
    if kind == "python":
        return PythonProcessor(
            config["processor_dir"],
            config.get("processor_entry") or "",
            config.get("processor_mainclass"),
            config.get("model_dir"),
            config.get("model_config"),
        )
    if kind == "onnx":
        from pai_lab.serving.processors.onnx_runtime import OnnxProcessor

        return OnnxProcessor(config["model_file"], threads)
    if kind == "pmml":
        from pai_lab.serving.processors.pmml import PmmlProcessor

        return PmmlProcessor(config["model_file"])
    if kind == "torch":
        from pai_lab.serving.processors.torchscript import TorchScriptProcessor

        return TorchScriptProcessor(config["model_file"], threads)
    if kind == "easyvision":
        from pai_lab.serving.processors.easyvision import EasyVisionProcessor

        return EasyVisionProcessor(config["model_dir"], config.get("class_names"), config.get("model_config"))
    from pai_lab.serving.processors.tensorflow import TensorFlowProcessor

    return TensorFlowProcessor(config["model_dir"], config.get("class_names"))
