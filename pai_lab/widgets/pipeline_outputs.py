"""The run panel's outputs with actions: a model output gets Register and Deploy, a dataset (or any
other artifact) Register as dataset. Each button calls the client (``ArchivedArtifact.register_model``,
``.deploy``, ``.register_dataset``); what it made, or the server's refusal, is shown under the row."""

from __future__ import annotations

import html
import re

import ipywidgets as w


def _default_name(text: str) -> str:
    """A model/dataset/service name from a run and output name: lowercase letters, digits and '_'."""
    name = re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_") or "output"
    return ("m_" + name if not name[0].isalpha() else name)[:60]


class OutputRow(w.VBox):
    """One artifact output: its name and location, the name fields and the buttons for what it can become."""

    def __init__(self, artifact, run_name: str):
        self.artifact = artifact
        base = _default_name(f"{run_name}_{artifact.name}")
        where = artifact.uri or html.escape(str(artifact.value))
        self.label = w.HTML(
            f"<b>{html.escape(artifact.name)}</b> <small>from {html.escape(artifact.producer_id)}</small> "
            f"<code>{html.escape(str(where))}</code>"
        )
        self.name = w.Text(value=base, description="name", layout=w.Layout(width="260px"))
        self.message = w.HTML()
        self.buttons: dict[str, w.Button] = {}
        if artifact.is_model:
            self.service = w.Text(value=base, description="service", layout=w.Layout(width="260px"))
            self.buttons["register"] = w.Button(description="Register", icon="tag")
            self.buttons["deploy"] = w.Button(description="Deploy", button_style="success", icon="rocket")
            controls = [self.name, self.buttons["register"], self.service, self.buttons["deploy"]]
        else:
            self.service = None
            self.buttons["register_dataset"] = w.Button(description="Register as dataset", icon="database")
            controls = [self.name, self.buttons["register_dataset"]]
        for action, button in self.buttons.items():
            button.on_click(lambda _b, action=action: self.act(action))
        super().__init__([self.label, w.HBox(controls), self.message])

    def act(self, action: str) -> None:
        """What a button does: through the client, as the member the panel's client speaks for."""
        button = self.buttons[action]
        button.disabled = True
        try:
            if action == "deploy":
                made = self.artifact.deploy(self.service.value.strip())  # type: ignore[union-attr]
            elif action == "register":
                made = self.artifact.register_model(self.name.value.strip())
            else:
                made = self.artifact.register_dataset(self.name.value.strip())
            what = f"{made.kind} {made.name}" + (f":{made.version}" if made.version else "")
            where = f" at <code>{html.escape(made.endpoint)}</code>" if made.endpoint else ""
            self.message.value = f"<span style='color:#146c43'>{html.escape(what)}{where}</span>"
        except Exception as exc:  # noqa: BLE001 - a refusal (403, 409) is shown; the panel lives on
            self.message.value = f"<span style='color:#c62828'>{html.escape(str(exc))}</span>"
        finally:
            button.disabled = False


class OutputActions(w.VBox):
    """The artifact outputs of a run that succeeded, each with its actions; empty before that."""

    def __init__(self):
        self.rows: dict[str, OutputRow] = {}
        super().__init__([])

    def show(self, run, detail) -> None:
        if detail.status != "Succeeded" or self.rows:
            return
        from pai_lab.client.pipelines import ArchivedArtifact

        artifacts = [ArchivedArtifact(o, run._ws) for o in detail.outputs if o.kind == "artifacts"]
        self.rows = {f"{a.producer_id}/{a.name}": OutputRow(a, detail.name) for a in artifacts}
        self.children = list(self.rows.values())

    def row(self, name: str) -> OutputRow:
        """The row of output ``name`` (or ``step/name``)."""
        found = [r for key, r in self.rows.items() if key == name or key.split("/", 1)[1] == name]
        if len(found) != 1:
            raise KeyError(f"no single output {name!r}; outputs: {', '.join(self.rows)}")
        return found[0]
