"""The ``pytorch`` processor: a TorchScript module (``torch.jit.save``) with one tensor in and a
tensor (or a dict of tensors) out, served as one signature: input ``input``, output ``output``."""

from __future__ import annotations

import numpy as np

from pai_lab.serving.processors.base import ProcessorError

SIGNATURE = "serving_default"


class TorchScriptProcessor:
    kind = "torch"
    takes_body = False

    def __init__(self, model_file: str, threads: int | None = None):
        try:
            import torch
        except ImportError:
            raise ProcessorError(
                400, 'processor pytorch needs torch on the server: pip install "pai_lab[torch]"'
            ) from None
        self._torch = torch
        if threads:
            torch.set_num_threads(threads)
        try:
            self.module = torch.jit.load(model_file, map_location="cpu")
        except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError for a file that is no TorchScript
            raise ProcessorError(400, f"model_path is not a TorchScript module (torch.jit.save): {exc}") from None
        self.module.eval()
        spec = {"name": "input", "shape": None, "type": "DT_FLOAT"}
        self.signature_json = {
            SIGNATURE: {
                "signature_name": SIGNATURE,
                "inputs": [spec],
                "outputs": [{"name": "output", "shape": None, "type": "DT_FLOAT"}],
            }
        }
        self.default_signature = SIGNATURE

    def predict(
        self, signature_name: str | None, inputs: dict[str, np.ndarray], output_filter: list[str] | None = None
    ) -> dict[str, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            out = self.module(torch.from_numpy(np.ascontiguousarray(inputs["input"])))
        outputs = {k: v for k, v in out.items()} if isinstance(out, dict) else {"output": out}
        names = output_filter or list(outputs)
        unknown = [n for n in names if n not in outputs]
        if unknown:
            raise ProcessorError(
                400, f"unknown output {unknown[0]!r} in output_filter; outputs are: {', '.join(outputs)}"
            )
        return {n: outputs[n].detach().cpu().numpy() for n in names}
