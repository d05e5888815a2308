"""The service runtime and routing: a service's generations of instances (reconciled to the
spec the control plane pushes, rolled out before the old ones retire), the request jobs made from
its signature, the pick of an instance, and the entry routes that split traffic by weight."""

from __future__ import annotations

import asyncio
import base64
import itertools
import secrets
from typing import TYPE_CHECKING

from pai_lab.errors import BadInput
from pai_lab.serving.gateway.errors import NotReady
from pai_lab.serving.gateway.instance_runtime import Instance, Job
from pai_lab.serving.protocols import eas, fit_inputs

if TYPE_CHECKING:
    from pai_lab.serving.gateway.core import Gateway

# the event loop holds only weak references to tasks: these are kept here until they end
_BACKGROUND: set[asyncio.Task] = set()


def in_background(coro) -> None:
    """Run ``coro`` without waiting for it (a drain, a stop)."""
    task = asyncio.create_task(coro)
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


class ServiceRuntime:
    """A service inside the gateway: its generations of instances and what they serve."""

    def __init__(self, gateway: Gateway, name: str):
        self.gateway = gateway
        self.name = name
        self.spec: dict = {}
        self.instances: list[Instance] = []  # serving
        self.incoming: list[Instance] = []  # a new version starting (rolling update)
        self.retiring: set[Instance] = set()
        self.kind = None
        self.takes_body = False  # a body processor (python, pmml, easyvision): the request body as it is
        self.batchable = False
        self.signatures: dict = {}
        self.default_signature: str | None = None
        self.rollout: asyncio.Task | None = None
        self.stats = {"requests": 0, "errors": 0, "latency_ms_sum": 0.0, "arrivals": 0}
        self.rr = itertools.count()

    # ----------------------------------------------------------------- reconcile

    @property
    def revision(self) -> str | None:
        return self.spec.get("revision")

    def _instance_name(self) -> str:
        return f"{self.name.replace('_', '-')}-{self.spec['revision'][:10]}-{secrets.token_hex(3)[:5]}"

    def _generation(self) -> dict:
        s = self.spec
        return {
            "config": s["processor"],
            "rpc": s["rpc"],
            "workers": s["workers"],
            "version": s["version"],
            "revision": s["revision"],
            "cpu": s.get("cpu"),
            "memory": s.get("memory"),
            "gpu": s.get("gpu"),
            "sandbox": s.get("sandbox"),
            "placement": s.get("placement"),
            "warm_up": [base64.b64decode(b) for b in s.get("warm_up") or []],
        }

    def apply(self, spec: dict) -> None:
        old_revision, self.spec = self.revision, spec
        if spec["state"] == "Stopped":
            self._cancel_rollout()
            for inst in self.instances:
                self._retire(inst)
            self.instances = []
            return
        want = int(spec["instance"])
        if old_revision != spec["revision"] or (not self.instances and not self.incoming):
            self._cancel_rollout()
            generation = self._generation()
            if not self.instances:
                self.instances = [Instance(self, self._instance_name(), generation) for _ in range(want)]
                self._forget_signature()
            else:  # rolling update: the old instances serve until the new ones are all ready
                self.incoming = [Instance(self, self._instance_name(), generation) for _ in range(want)]
                self.rollout = asyncio.create_task(self._roll_out(self.incoming))
            return
        target = self.incoming if self.incoming else self.instances
        generation = target[0].generation if target else self._generation()
        while len(target) < want:
            target.append(Instance(self, self._instance_name(), generation))
        while len(target) > want:
            self._retire(target.pop())

    def _cancel_rollout(self) -> None:
        if self.rollout is not None:
            self.rollout.cancel()
            self.rollout = None
        for inst in self.incoming:
            self._retire(inst, drain=False)
        self.incoming = []

    def _forget_signature(self) -> None:
        self.kind, self.signatures, self.default_signature = None, {}, None
        self.takes_body = False

    async def _roll_out(self, incoming: list[Instance]) -> None:
        handing_over: Instance | None = None
        while not all(i.ready for i in incoming):
            # The old version holds the GPUs the new one waits for: rather than wait forever, its
            # instances give theirs up one at a time (the service runs one instance short meanwhile).
            if (handing_over is None or handing_over not in self.retiring) and self._old_hold_needed_gpus(incoming):
                handing_over = next(i for i in self.instances if self.gateway.gpu_holders.get(i.name))
                self.instances.remove(handing_over)
                self._retire(handing_over)
            await asyncio.sleep(0.05)
        if self.incoming is not incoming:
            return
        old, self.instances, self.incoming, self.rollout = self.instances, incoming, [], None
        if incoming:
            self._set_signature(incoming[0].info)
        for inst in old:
            self._retire(inst)

    def _old_hold_needed_gpus(self, incoming: list[Instance]) -> bool:
        return any(i.waiting_for_gpus for i in incoming) and any(
            self.gateway.gpu_holders.get(i.name) for i in self.instances
        )

    def _retire(self, inst: Instance, drain: bool = True) -> None:
        self.retiring.add(inst)

        async def go():
            try:
                await inst.stop(drain)
            finally:
                self.retiring.discard(inst)

        in_background(go())

    def learn(self, inst: Instance) -> None:
        """An instance loaded: what the model looks like, taken from the generation that serves."""
        if inst in self.instances or (self.kind is None and not self.instances):
            self._set_signature(inst.info)

    def _set_signature(self, info: dict) -> None:
        self.kind = info["kind"]
        self.takes_body = bool(info.get("takes_body", info["kind"] == "python"))
        self.batchable = bool(info.get("batchable"))
        self.signatures = info["signatures"]
        self.default_signature = info.get("default_signature")

    def hand_over(self, dead: Instance) -> None:
        """A crashed instance's queued requests go to the others that are ready."""
        others = [i for i in self.instances if i is not dead and i.ready and not i.draining]
        while dead.pending and others:
            job = dead.pending.popleft()
            min(others, key=lambda i: i.load).pending.append(job)
        for inst in others:
            inst.wakeup.set()

    async def close(self, drain: bool = False) -> None:
        """End every instance; ``drain``: let queued and in-flight requests finish first."""
        self._cancel_rollout()
        await asyncio.gather(*(i.stop(drain=drain) for i in [*self.instances, *self.retiring]), return_exceptions=True)
        self.instances = []

    def delete_instance(self, name: str) -> bool:
        for group in (self.instances, self.incoming):
            for i, inst in enumerate(group):
                if inst.name == name:
                    group[i] = Instance(self, self._instance_name(), inst.generation)
                    self._retire(inst)
                    return True
        return False

    # ----------------------------------------------------------------- requests

    def signature(self, name: str | None) -> dict:
        if self.kind is None:
            raise NotReady(f"service {self.name} has no ready instance yet; wait until it is Running")
        key = name or self.default_signature
        if key not in self.signatures:
            raise BadInput(
                f"unknown signature_name {key!r}; the model has: {', '.join(sorted(self.signatures))}", "signature_name"
            )
        return self.signatures[key]

    def make_job(self, body: bytes, content_type: str) -> tuple[Job, bool]:
        """An EAS request body as a job; also whether the answer should be JSON."""
        future = asyncio.get_running_loop().create_future()
        if self.takes_body:
            return Job("process", body, future, batchable=self.batchable), False
        as_json = eas.is_json(content_type, body)
        sig_name, inputs, output_filter = (eas.parse_json if as_json else eas.parse_proto)(body)
        return self.tensor_job(sig_name, inputs, output_filter, future), as_json

    def tensor_job(self, sig_name, inputs, output_filter, future=None) -> Job:
        if self.takes_body:
            raise BadInput(
                f"service {self.name} runs the {self.kind} processor, which takes the request body as it "
                f"is; call /api/predict/{self.name} with the body it expects"
            )
        sig = self.signature(sig_name)
        inputs = fit_inputs(sig, inputs)
        future = future or asyncio.get_running_loop().create_future()
        return Job(
            "predict",
            {"signature_name": sig["signature_name"], "inputs": inputs, "output_filter": output_filter},
            future,
        )

    def pick(self) -> Instance:
        ready = [i for i in self.instances if i.ready and not i.draining]
        if not ready:
            state = "stopped" if self.spec.get("state") == "Stopped" else "not ready yet"
            raise NotReady(f"service {self.name} has no ready instance ({state})")
        if len(ready) == 1:
            return ready[0]
        start = next(self.rr) % len(ready)
        order = ready[start:] + ready[:start]
        return min(order, key=lambda i: i.load)

    # ----------------------------------------------------------------- status

    @property
    def state(self) -> str:
        if self.spec.get("state") == "Stopped":
            return "Stopping" if self.retiring else "Stopped"
        if self.incoming:
            return "HotUpdate"
        ready = sum(i.ready for i in self.instances)
        if self.instances and ready == 0 and all(i.status == "Failed" or i.fatal for i in self.instances):
            return "Failed"
        if int(self.spec.get("instance", 0)) == 0:
            return "Running"
        if ready == 0:
            return "Waiting"
        return "Running"

    def status(self) -> dict:
        shown = [*self.instances, *self.incoming]
        return {
            "state": self.state,
            "ready": sum(i.ready for i in self.instances),
            "total": len(self.instances),
            "version": self.spec.get("version"),
            "revision": self.revision,
            "instances": [i.describe() for i in shown]
            + [dict(i.describe(), status="Terminating") for i in self.retiring],
            "signature": self.signatures.get(self.default_signature) if self.signatures else None,
            "message": next((i.reason for i in shown if i.status == "Failed"), "")
            or next((i.load_errors[-1] for i in shown if i.fatal and i.load_errors), ""),
            # every instance failed in a way restarting cannot heal: waiting for Running is pointless
            "fatal": (bool(shown) and all(i.fatal for i in shown) and not any(i.ready for i in shown))
            or (bool(self.incoming) and all(i.fatal for i in self.incoming)),  # a new version that cannot load
            "stats": dict(self.stats),
        }


class Route:
    """An entry endpoint: its token and the services its traffic goes to, by weight.

    Smooth weighted round robin spreads the shares exactly (30% is 3 in every 10)."""

    def __init__(self, token: str | None, targets: dict[str, int]):
        self.token = token
        self.targets = [(name, w) for name, w in targets.items() if w > 0]
        self.total = sum(w for _, w in self.targets)
        self.current = {name: 0 for name, _ in self.targets}

    def choose(self) -> str:
        if len(self.targets) == 1:
            return self.targets[0][0]
        best = self.targets[0][0]
        for name, weight in self.targets:
            self.current[name] += weight
            if self.current[name] > self.current[best]:
                best = name
        self.current[best] -= self.total
        return best
