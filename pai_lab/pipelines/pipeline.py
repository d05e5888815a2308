"""PipelineStep and Pipeline: operators wired into a DAG, as in PAI's SDK.

A step's input takes a literal, a pipeline input (a free PipelineParameter/PipelineArtifact) or
another step's output; the steps a pipeline needs are found from its outputs and steps, and its
inputs are the free variables its steps read. The graph rules live in :mod:`manifest`.
"""

from __future__ import annotations

from typing import Any

from pai_lab.pipelines import display
from pai_lab.pipelines import manifest as manifests
from pai_lab.pipelines.manifest_shapes import API_VERSION
from pai_lab.pipelines.operators import OperatorBase, value_of
from pai_lab.pipelines.types import PipelineError, PipelineVariable, VariablesSpec, check_name


class PipelineStep:
    """One node: an operator with its inputs assigned. ``operator=`` takes any operator (saved or not);
    ``identifier``/``provider``/``version`` name a saved one."""

    def __init__(
        self,
        identifier: str | None = None,
        provider: str | None = None,
        version: str = "v1",
        inputs: dict | list | None = None,
        name: str | None = None,
        depends=None,
        *,
        operator: OperatorBase | None = None,
        workspace=None,
    ):
        if operator is None:
            if not identifier:
                raise PipelineError(
                    "a step needs an operator (operator=op, or op.as_step()) or a saved operator's identifier",
                    "identifier",
                )
            from pai_lab.pipelines.operators import SavedOperator

            try:
                operator = SavedOperator.get_by_identifier(identifier, provider, version, workspace=workspace)
            except PipelineError as exc:
                if name is None:
                    raise
                raise PipelineError(f"step {name!r}: {exc.message}", f"steps.{name}.{exc.field}") from None
        self.operator = operator
        self.name = check_name(name, "name") if name is not None else None
        self._depends: list[PipelineStep] = []
        self._inputs = VariablesSpec(
            [
                v.copy(io_type="inputs", parent=self, from_=None, value=getattr(v, "value", None))
                for v in operator.inputs
            ]
        )
        self._outputs = VariablesSpec([v.copy(io_type="outputs", parent=self, from_=None) for v in operator.outputs])
        self._assigned: dict[str, Any] = {}
        self._assign(inputs)
        for step in [depends] if isinstance(depends, PipelineStep) else list(depends or []):
            self.after(step)

    def _assign(self, inputs: dict | list | None) -> None:
        if inputs is None:
            return
        if isinstance(inputs, (list, tuple)):
            if len(inputs) > len(self._inputs):
                raise PipelineError(
                    f"step {self.name!r}: {len(inputs)} inputs given, the operator takes {len(self._inputs)}", "inputs"
                )
            inputs = {self._inputs[i].name: v for i, v in enumerate(inputs)}
        for key, value in inputs.items():
            if key not in self._inputs:
                raise PipelineError(
                    f"step {self.name or self.operator.identifier!r}: {key!r} is not an input of its "
                    f"operator (inputs: {', '.join(v.name for v in self._inputs) or 'none'})",
                    f"steps.{self.name}.{key}",
                )
            value = value_of(value)
            self._assigned[key] = value
            if (
                isinstance(value, PipelineVariable)
                and value.parent is not None
                and value.parent is not self
                and value.parent not in self._depends
            ):
                self._depends.append(value.parent)

    def after(self, *steps: PipelineStep) -> PipelineStep:
        """Run after ``steps`` even without data between them."""
        for step in steps:
            if step not in self._depends:
                self._depends.append(step)
        return self

    @property
    def inputs(self) -> VariablesSpec:
        return self._inputs

    @property
    def outputs(self) -> VariablesSpec:
        return self._outputs

    @property
    def depends(self) -> list[PipelineStep]:
        return list(self._depends)

    @property
    def identifier(self) -> str:
        return self.operator.identifier

    @property
    def free_variables(self) -> list[PipelineVariable]:
        return [v for v in self._assigned.values() if isinstance(v, PipelineVariable) and v.parent is None]

    def to_dict(self) -> dict:
        args: dict[str, list] = {"parameters": [], "artifacts": []}
        for var in self._inputs:
            if var.name not in self._assigned:
                continue
            value = self._assigned[var.name]
            entry = {"name": var.name}
            if isinstance(value, PipelineVariable):
                entry["from"] = value.ref
            else:
                entry["value"] = value
            args[var.kind].append(entry)
        return {
            "apiVersion": API_VERSION,
            "metadata": {**self.operator.metadata, "name": self.name},
            "spec": {
                "arguments": args,
                "dependencies": [s.name for s in self._depends],
                "operator": self.operator.to_dict(),
            },
        }

    def __repr__(self) -> str:
        return f"<PipelineStep {self.name} ({self.operator.identifier})>"


class Pipeline(OperatorBase):
    """A DAG of steps, itself an operator: ``run()``, ``to_dict()``, ``dot()``."""

    def __init__(
        self,
        steps: list[PipelineStep] | None = None,
        inputs: list[PipelineVariable] | None = None,
        outputs: list | dict | None = None,
        identifier: str | None = None,
        version: str | None = None,
        provider: str | None = None,
    ):
        outputs_map = self._outputs_map(outputs)
        all_steps = self._collect(list(steps or []), [v.parent for v in outputs_map.values()])
        free = self._free_inputs(all_steps)
        if inputs is not None:
            given = {v.name for v in inputs}
            if given != set(free):
                raise PipelineError(
                    f"inputs: the steps read {sorted(free) or 'no inputs'}, the pipeline declares "
                    f"{sorted(given)}; declare exactly the free inputs (or leave inputs out)",
                    "inputs",
                )
            order = [free[v.name] for v in inputs]
        else:
            order = list(free.values())
        super().__init__(order, [], identifier, version, provider)
        self._inputs = VariablesSpec(order)  # the same objects the steps read, so references resolve
        self._steps = all_steps
        self._pipeline_outputs = outputs_map
        self._outputs = VariablesSpec(
            [v.copy(io_type="outputs", parent=None, name=name) for name, v in outputs_map.items()]
        )
        self.graph_info = manifests.check(self.to_dict())  # the one set of rules, as the server applies them

    @staticmethod
    def _outputs_map(outputs) -> dict[str, PipelineVariable]:
        if outputs is None:
            return {}
        items = outputs.items() if isinstance(outputs, dict) else [(v.name, v) for v in outputs]
        found: dict[str, PipelineVariable] = {}
        for name, var in items:
            if not isinstance(var, PipelineVariable) or var.parent is None or var.io_type != "outputs":
                raise PipelineError(
                    f"outputs.{name}: a pipeline output is a step's output (step.outputs[...])", f"outputs.{name}"
                )
            if name in found:
                raise PipelineError(
                    f"outputs: two outputs are named {name!r}; rename one (outputs as a dict)", f"outputs.{name}"
                )
            found[check_name(name, f"outputs.{name}")] = var
        return found

    @staticmethod
    def _collect(steps: list[PipelineStep], more: list[PipelineStep]) -> list[PipelineStep]:
        found: list[PipelineStep] = []
        todo = steps + more
        while todo:
            step = todo.pop(0)
            if not isinstance(step, PipelineStep):
                raise PipelineError(f"steps: {step!r} is not a PipelineStep", "steps")
            if any(step is s for s in found):
                continue
            found.append(step)
            todo.extend(step.depends)
        if len(found) > manifests.MAX_STEPS:
            raise PipelineError(f"steps: {len(found)} steps; at most {manifests.MAX_STEPS}", "steps")
        taken = {s.name for s in found if s.name}
        counts: dict[str, int] = {}
        for step in found:  # PAI names unnamed steps "<identifier>-<i>"
            if step.name is None:
                while True:
                    counts[step.identifier] = counts.get(step.identifier, 0) + 1
                    candidate = f"{step.identifier}-{counts[step.identifier]}"[:64]
                    if candidate not in taken:
                        break
                step.name = candidate
                taken.add(candidate)
        names = [s.name for s in found]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup:
            raise PipelineError(f"step {dup!r}: two steps have this name; rename one", f"steps.{dup}.name")
        return found

    @staticmethod
    def _free_inputs(steps: list[PipelineStep]) -> dict[str, PipelineVariable]:
        free: dict[str, PipelineVariable] = {}
        for step in steps:
            for var in step.free_variables:
                if var.name in free and free[var.name] is not var:
                    raise PipelineError(
                        f"inputs: two different pipeline inputs are named {var.name!r}; rename one",
                        f"inputs.{var.name}",
                    )
                free[var.name] = var
        params = {n: v for n, v in free.items() if v.kind == "parameters"}
        return {**params, **{n: v for n, v in free.items() if v.kind == "artifacts"}}

    @property
    def steps(self) -> list[PipelineStep]:
        return list(self._steps)

    def spec_to_dict(self) -> dict:
        outputs: dict[str, list] = {"parameters": [], "artifacts": []}
        for name, var in self._pipeline_outputs.items():
            entry = {**var.to_dict(), "name": name, "from": var.ref}
            entry.pop("value", None)
            outputs[var.kind].append(entry)
        return {"inputs": self.inputs.to_dict(), "outputs": outputs, "pipelines": [s.to_dict() for s in self._steps]}

    def graph(self, status: dict[str, str] | None = None) -> str:
        """The DAG as graphviz source text (steps coloured by ``status`` when given)."""
        return display.dot_source(self.graph_info, status)

    def dot(self, status: dict[str, str] | None = None):
        """graphviz.Source when graphviz is installed (``.render()`` draws it), else the text with a plain
        HTML rendering for notebooks."""
        return display.Dot(self.graph(status), self.graph_info, status)

    def _repr_html_(self) -> str:
        return display.graph_html(self.graph_info, None)

    def __repr__(self) -> str:
        return f"<Pipeline {self.identifier}@{self.version}: {len(self._steps)} steps>"
