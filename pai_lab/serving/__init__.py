"""Model serving in the spirit of PAI-EAS: eascmd-compatible services behind a local gateway
that speaks EAS, TF Serving REST and Open Inference v2, with dynamic batching, blue-green
traffic and rolling updates."""
