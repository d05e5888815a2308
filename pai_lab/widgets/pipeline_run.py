"""``display(run)``: a live panel for one pipeline run.

The DAG coloured by step state (SVG: graphviz's when installed, else display.dag_svg's), the step table (state,
cache hit, duration), a log pane for the step picked, the run's outputs (with Register / Deploy actions
once it succeeded), and Terminate / Suspend / Resume / Retry buttons that call the client. It polls the
control plane until the run ends or the panel is closed; a Resume or Retry starts polling again.
"""

from __future__ import annotations

import html
import threading

import ipywidgets as w

from pai_lab.pipelines import display
from pai_lab.widgets.pipeline_outputs import OutputActions

_NO_LOG = ("Initialized", "Skipped")  # states in which a step has written no log in this attempt


class PipelineRunWidget(w.VBox):
    def __init__(self, run, refresh: float = 1.0, tail: int = 500):
        self.run = run
        self.refresh = refresh
        self.tail = tail
        self.header = w.HTML()
        self.graph = w.HTML()
        self.steps = w.HTML()
        self.step = w.Dropdown(description="log of", layout=w.Layout(width="320px"))
        self.log_view = w.Textarea(layout=w.Layout(width="100%", height="200px"), disabled=True)
        self.outputs = w.HTML()
        self.output_actions = OutputActions()  # Register / Deploy on each artifact, once the run succeeded
        self.message = w.HTML()  # what the control plane answered to a refused button
        self.buttons = {
            "terminate": w.Button(description="Terminate", button_style="danger", icon="stop"),
            "suspend": w.Button(description="Suspend", icon="pause"),
            "resume": w.Button(description="Resume", icon="play"),
            "retry": w.Button(description="Retry", button_style="warning", icon="redo"),
        }
        for action, button in self.buttons.items():
            button.on_click(lambda _b, action=action: self.act(action))
        self.step.observe(lambda _change: self._locked(self._show_logs), names="value")
        self._lock = threading.RLock()  # the poller and the buttons both read and draw
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._drawn: tuple | None = None  # the states the DAG was last drawn with
        self._logs: dict[str, tuple[tuple, int, list[str], bool]] = {}  # step -> (attempt key, offset, tail, done)
        super().__init__(
            [
                self.header,
                self.graph,
                self.steps,
                w.HBox(list(self.buttons.values())),
                self.message,
                self.step,
                self.log_view,
                self.outputs,
                self.output_actions,
            ]
        )
        self.update()
        self._start_polling()

    # --- polling -----------------------------------------------------------------------------------------
    @property
    def polling(self) -> bool:
        return self._thread is not None

    def _start_polling(self) -> None:
        with self._lock:
            if (
                self.refresh
                and self._thread is None
                and not self._closed.is_set()
                and self.run.detail.status not in display.TERMINAL
            ):
                self._thread = threading.Thread(target=self._loop, daemon=True, name=f"pai-lab-run-{self.run.id}")
                self._thread.start()

    def _loop(self) -> None:
        try:
            while not self._closed.wait(self.refresh):
                try:
                    self.update()
                except Exception as exc:  # noqa: BLE001 - the server went away: say so once and stop
                    self.message.value = f"<i>refresh stopped: {html.escape(str(exc))}</i>"
                    return
                with self._lock:  # decided under the lock, so a Retry clicked now starts a new poller
                    if self.run.detail.status in display.TERMINAL:
                        return
        finally:
            with self._lock:
                if self._thread is threading.current_thread():
                    self._thread = None

    def close(self) -> None:
        self._closed.set()  # the poller ends at its next tick
        super().close()

    def _locked(self, draw) -> None:
        with self._lock:
            draw()

    # --- drawing ---------------------------------------------------------------------------------------
    def update(self) -> None:
        with self._lock:
            if self._closed.is_set():
                return
            d = self.run.refresh()
            self.header.value = (
                f"<b>run {html.escape(d.name)}</b> <code>{html.escape(d.id)}</code> · "
                f"{display.badge(d.status)} · attempt {d.attempt} · by {html.escape(d.created_by)}"
                + (
                    f"<br><i style='white-space:pre-wrap'>{html.escape(display.clip(d.reason, 600))}</i>"
                    if d.reason
                    else ""
                )
            )
            states = tuple((n.name, n.status) for n in d.nodes)
            if states != self._drawn:  # graphviz runs a process: draw only when a state changed
                self.graph.value = display.nodes_graph_html(d.nodes)
                self._drawn = states
            self.steps.value = display.steps_html(d.nodes)
            self.outputs.value = f"<b>outputs</b>{display.outputs_html(d.outputs)}" if d.outputs else ""
            self.output_actions.show(self.run, d)
            for action, button in self.buttons.items():
                button.disabled = d.status not in display.ACTIONS[action]
            names = [n.name for n in d.nodes]
            if names and list(self.step.options) != names:
                self.step.options = names
                # the step worth reading first: one that failed, else one running, else the first
                self.step.value = next(
                    (n.name for n in d.nodes if n.status == "Failed"),
                    next((n.name for n in d.nodes if n.status == "Running"), names[0]),
                )
            self._show_logs()

    def _show_logs(self) -> None:
        """Read the picked step's log from where the last read stopped; keep its last ``tail`` lines."""
        node = next((n for n in self.run.detail.nodes if n.name == self.step.value), None)
        if node is None:
            self.log_view.value = ""
            return
        if node.status in _NO_LOG:
            self.log_view.value = f"({node.name} is {node.status}{', cached' if node.cached else ''}: no log)"
            return
        attempt = (node.attempt, node.started_at)  # a retried step writes its log afresh
        key, offset, lines, done = self._logs.get(node.name, (attempt, 0, [], False))
        if key != attempt:
            offset, lines, done = 0, [], False
        if not done:
            finished = node.status in display.TERMINAL  # read once more after it ended, then never again
            while True:
                page = self.run.get_logs(node.name, offset, 1000)
                lines = (lines + page)[-self.tail :]
                offset += len(page)
                if len(page) < 1000:
                    break
            self._logs[node.name] = (attempt, offset, lines, finished)
        self.log_view.value = "\n".join(lines)

    # --- buttons ---------------------------------------------------------------------------------------
    def act(self, action: str) -> None:
        """What a button does: terminate, suspend, resume or retry through the client; a refusal is shown."""
        with self._lock:
            self.buttons[action].disabled = True
            try:
                getattr(self.run, action)()
                self.message.value = ""
            except Exception as exc:  # noqa: BLE001 - a 403/409 or a lost server: shown, the panel lives on
                self.message.value = (
                    f"<span style='color:#c62828'>{html.escape(action)}: {html.escape(str(exc))}</span>"
                )
            self.update()
        self._start_polling()
