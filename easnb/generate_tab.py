"""The workbench's Generate tab: a prompt, sampling controls, the text as it arrives, Stop, and its latency.

Shows time to first token, tokens per second and a chart of the inter-token latencies; every
generation is kept in the workbench's History (replay it, or copy it as easnb or tritonclient
code). Every value a server sends is escaped (``easnb.markup``).

>>> tab = GenerateInspector(conn, "textgen")      # doctest: +SKIP
>>> tab.prompt.value = "Hello"; tab.generate(wait=True); tab.generation.text   # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from . import widgets as _widgets  # noqa: F401, I001 - first, for its message when ipywidgets is missing
import ipywidgets as w

from .display import error_html
from .errors import EasnbError
from .generate import STREAM_OPTIONS, Generation, build_inputs, convention
from .history import History, saved_inputs
from .markup import Markup, html, join
from .model_forms import model_box, model_names
from .widgets import Background, connection_of

#: How often the live text is sent to the browser at most (seconds): a fast model is not a message per token.
REFRESH = 0.05


def latency_chart(latencies_ms: Sequence[float], width: int = 480, height: int = 60) -> Markup:
    """An SVG of the inter-token latencies in order (ms), with the median and the largest stated."""
    if not latencies_ms:
        return Markup()
    values = sorted(latencies_ms)
    top = max(values[-1], 1e-6)
    step = width / len(latencies_ms)
    bars = join(
        html("<rect x='{:.2f}' y='{:.2f}' width='{:.2f}' height='{:.2f}' fill='#4c78a8'><title>{:.2f} ms</title></rect>",
             i * step, height - height * v / top, max(step - 1, 0.5), height * v / top, v)
        for i, v in enumerate(latencies_ms)
    )
    return html(
        "<div class='easnb-itl'><small>inter-token latency: median {:.2f} ms · max {:.2f} ms · {} gaps</small><br>"
        "<svg class='easnb-itl-chart' width='{}' height='{}' role='img' aria-label='inter-token latency per token'>{}</svg></div>",
        values[len(values) // 2], values[-1], len(values), width, height, bars,
    )


def stats_html(g: Generation, stopped: bool = False) -> Markup:
    """Time to first token, tokens per second, tokens and the finish reason."""
    ttft = g.time_to_first_token
    rate = g.tokens_per_second
    return html(
        "<div class='easnb-generate-stats'>time to first token <b class='easnb-ttft'>{}</b> · "
        "<b class='easnb-tps'>{}</b> tokens/s · {} tokens · finish reason {}{}</div>",
        f"{ttft * 1000:.1f} ms" if ttft is not None else "-", f"{rate:.1f}" if rate else "-", g.tokens,
        g.finish_reason or "-", Markup(" · <b>stopped</b>") if stopped else Markup(),
    )


class GenerateInspector(w.VBox):  # type: ignore[misc]  # ipywidgets ships no type hints
    """Prompt, sampling controls, Generate and Stop; the text appears as it is generated.

    ``generation`` is the last ``Generation``; ``history`` holds every one made here.
    """

    def __init__(self, source: Any, model: str = "", models: list[str] | None = None, history: History | None = None) -> None:
        self.source = source
        self.history = history if history is not None else History()
        self.generation: Generation | None = None
        self.model_field = model_box(source, model, models)
        self.prompt = w.Textarea(placeholder="Type a prompt", description="Prompt", layout=w.Layout(width="520px", height="80px"))
        self.max_tokens = w.BoundedIntText(value=64, min=0, max=32768, description="max_tokens")
        wide = {"description_width": "90px"}
        self.temperature = w.FloatSlider(value=0.7, min=0.0, max=2.0, step=0.05, description="temperature", style=wide)
        self.top_p = w.FloatSlider(value=1.0, min=0.0, max=1.0, step=0.01, description="top_p", style=wide)
        self.extra = w.Text(placeholder='more settings as JSON, e.g. {"top_k": 40}', description="Other", layout=w.Layout(width="520px"))
        self.button = w.Button(description="Generate", button_style="primary")
        self.button.on_click(lambda _: self.generate())
        self.stop_button = w.Button(description="Stop", button_style="warning", disabled=True, tooltip="cancel the generation")
        self.stop_button.on_click(lambda _: self.stop())
        self.text = w.HTML()
        self.stats = w.HTML()
        self.chart = w.HTML()
        self.output = w.HTML()
        self._background = Background("easnb-generate")
        self._stopped = False
        controls = w.VBox([self.max_tokens, self.temperature, self.top_p, self.extra])
        super().__init__([self.model_field, self.prompt, controls, w.HBox([self.button, self.stop_button]),
                          self.text, self.stats, self.chart, self.output])

    def sampling(self) -> dict[str, Any]:
        """The sampling settings from the controls (``Other`` JSON on top)."""
        settings: dict[str, Any] = {"max_tokens": self.max_tokens.value, "temperature": self.temperature.value, "top_p": self.top_p.value}
        extra = self.extra.value.strip()
        if extra:
            try:
                more = json.loads(extra)
            except json.JSONDecodeError as exc:
                raise EasnbError(f"Other settings are not JSON: {exc}.", hint='e.g. {"top_k": 40, "stop": ["\\n"]}') from None
            if not isinstance(more, dict):
                raise EasnbError("Other settings must be a JSON object.", hint='e.g. {"top_k": 40}')
            taken = sorted(set(more) & {"model", "prompt", *STREAM_OPTIONS})  # was: a raw TypeError, or run unrecorded
            if taken:
                raise EasnbError(f"Other: {', '.join(taken)} is not a sampling setting.",
                                 hint="Other holds sampling settings sent to the model, e.g. {\"top_k\": 40}.")
            settings.update(more)
        return settings

    def generate(self, wait: bool = False) -> None:
        """What Generate does; ``wait=True`` blocks until the text is complete (or stopped)."""
        if self._background.busy:
            if wait:
                self._background.wait()
            return
        self.button.disabled, self.stop_button.disabled, self._stopped = True, False, False
        self.generation = None  # an error before this run's start must not show (or Stop cancel) the last run's
        self.text.value = self.stats.value = self.chart.value = self.output.value = ""
        self._background.start(self._run, wait)

    def stop(self) -> None:
        """Cancel the generation under way (the server sees the call cancelled)."""
        self._stopped = True
        if self.generation is not None:
            self.generation.cancel()

    def wait(self, timeout: float | None = None) -> None:
        self._background.wait(timeout)

    def _show(self, g: Generation, done: bool = False) -> None:
        cursor = Markup("") if done else Markup("<span class='easnb-cursor'>\u258d</span>")
        self.text.value = html("<pre class='easnb-generated' style='white-space: pre-wrap'>{}{}</pre>", g.text, cursor)
        self.stats.value = stats_html(g, done and self._stopped)

    def _run(self) -> None:
        try:
            conn = connection_of(self.source)
            model, prompt, sampling = self.model_field.value.strip(), self.prompt.value, self.sampling()
            if not model:
                raise EasnbError("Pick or type a model name first.", hint="A text generation model: text_input in, text_output out.")
            meta = conn.cached_model_metadata(model)
            request = {"model": model, "prompt": prompt, "sampling": sampling, "version": "",
                       "inputs": saved_inputs(build_inputs(meta, prompt, sampling))}
            summary = f"prompt {prompt[:40]!r}" + ("\u2026" if len(prompt) > 40 else "")

            def run() -> Generation:
                g: Generation = conn.generate(model, prompt, **sampling)
                self.generation = g
                if self._stopped:
                    g.cancel()
                shown = 0.0
                for _ in g:
                    if time.monotonic() - shown > REFRESH:
                        self._show(g)
                        shown = time.monotonic()
                return g

            g, _ = self.history.timed(conn, "generate", model, summary, request, run,  # a part is not one in the percentiles
                                      lambda g: "stopped" if g.stream.cancelled else "OK")
            self._show(g, done=True)
            self.chart.value = latency_chart([t * 1000 for t in g.inter_token_latencies])
        except Exception as exc:
            if self.generation is not None:
                self._show(self.generation, done=True)
            self.output.value = error_html(exc)
        finally:
            self.button.disabled, self.stop_button.disabled = False, True


def generators(conn: Any, models: Sequence[str]) -> list[str]:
    """The models of ``models`` that follow the text generation conventions, their metadata asked within
    ``PROBE_SECONDS`` in all (was: one connection timeout each, two minutes for a server slow to answer)."""
    ends, found = time.monotonic() + PROBE_SECONDS, []
    for model in models:
        left = ends - time.monotonic()
        if left <= 0:
            break
        try:
            convention(conn.model_metadata(model, timeout=left if conn.timeout is None else min(left, conn.timeout)))
        except EasnbError:
            continue
        found.append(model)
    return found


def decoupled_offer(meta: Any, open_generate: Any = None) -> w.Widget | None:
    """For the Infer tab: a note that ``meta``'s model generates text through the stream, and a way there."""
    try:
        convention(meta)
    except EasnbError:
        if str(meta.properties.get("decoupled", "")).lower() != "true":
            return None
        note = html("<div class='easnb-decoupled'><b>{}</b> is decoupled: it answers only through the stream "
                    "(Run gets UNIMPLEMENTED). Use <code>conn.stream({!r}, inputs)</code>.</div>", meta.name, meta.name)
        return w.HTML(note)
    note = html("<div class='easnb-decoupled'><b>{}</b> generates text: decoupled models answer only through the "
                "stream (Run gets UNIMPLEMENTED). Use the Generate tab, or <code>conn.generate({!r}, prompt)</code>.</div>",
                meta.name, meta.name)
    if open_generate is None:
        return w.HTML(note)
    button = w.Button(description="Open in Generate", button_style="info")
    button.on_click(lambda _: open_generate(meta.name))
    return w.VBox([w.HTML(note), button])


#: How many of the server's models the workbench asks for metadata, looking for text generators, and for how long.
PROBE, PROBE_SECONDS = 24, 3.0


def add_generate_page(bench: Any, conn: Any) -> list[tuple[str, w.Widget]]:
    """The workbench's Generate page (as ``[(title, page)]``, or none), wired to the Infer tab's offer."""
    wanted = getattr(bench, "show_generate", None)
    found = [] if wanted is False else generators(conn, model_names(bench.source, bench.models)[:PROBE])
    if not (wanted or found):
        bench.generate = None
        return []
    page = bench.generate = GenerateInspector(bench.source, found[0] if found else "", bench.models, bench.history)

    def open_generate(model: str) -> None:
        page.model_field.value = model
        bench.tabs.selected_index = list(bench.tabs.children).index(page)

    if bench.infer is not None:
        bench.infer.on_generate = open_generate
    return [("Generate", page)]
