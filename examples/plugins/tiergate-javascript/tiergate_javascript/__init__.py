"""tiergate's JavaScript runtime plugin: registered under the ``tiergate`` entry-point group."""

from __future__ import annotations

from collections.abc import Iterator

import tiergate

from .runtime import JavaScriptRuntime


@tiergate.hookimpl
def tiergate_runtimes(context: tiergate.PluginContext) -> Iterator[tiergate.RuntimeSpec]:
    yield tiergate.RuntimeSpec(
        name="javascript",
        factory=JavaScriptRuntime,
        description="JavaScript modules (export default handler) in warm Node.js workers",
        suffixes=(".mjs", ".js"),
    )
