"""The serving gateway: a long-lived tornado process in front of every service's instances.

    python -m pai_lab.serving.gateway --port 0 --state-dir DIR      (secret in $PAI_LAB_GATEWAY_SECRET)

The control plane starts it, pushes the whole desired state (services, versions, instance
counts, traffic split) to ``PUT /_admin/state`` after every change, and reads ``GET
/_admin/status``. The gateway reconciles: it starts instance processes, replaces crashed ones,
rolls a new version out before retiring the old one (so no request is lost), and routes each
request by its entry endpoint's weights to a ready instance's bounded queue.

Public endpoints: EAS ``/api/predict/<name>``, TF Serving ``/v1/models/...``, Open Inference v2
``/v2/...``, and ``/metrics`` in the Prometheus text format.

Its parts, one seam each: ``instance_runtime`` (an instance process, its queue and dispatch),
``service_runtime`` (a service's instances, rollouts, routes), ``core`` (the services, GPUs and
the memory watchdog), ``metrics``, ``errors`` (the runtime's refusals), ``handlers`` (the
protocols' HTTP handlers, which map those refusals to status codes) and ``entry`` (the process).
"""

SECRET_ENV = "PAI_LAB_GATEWAY_SECRET"
METRICS_TOKEN_ENV = "PAI_LAB_GATEWAY_METRICS_TOKEN"  # when set, /metrics wants it as a bearer token
