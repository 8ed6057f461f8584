"""A trace seen end to end: a bridged event's span in the gateway and the Reflex
handler's span (Reflex 0.10 with reflex-otel, exporting over OTLP/HTTP) in one trace,
the handler's a child of the gateway's, both received by the test's collector
(`otlp.py`)."""

from __future__ import annotations

import json
import secrets

from bridge_client import NS, WHOAMI, event, var

SERVICE = "isthmus-e2e"
HANDLER = f"{WHOAMI}.whoami"


def traced_gateway(stack):
    if "traced" not in stack.gateways:

        def export(config):
            config["tracing"] = {
                "otlp": {"endpoint": stack.otlp.endpoint, "service_name": SERVICE, "export_interval": "100ms"}
            }

        stack.start_gateway("traced", edit=export)
    return "traced"


async def emit_whoami(sock, **top_level) -> None:
    """The whoami event with extra top-level members (a browser's trace context)."""
    before = sock.get(WHOAMI, "calls", 0)
    data = event(HANDLER, {}, route="/whoami")
    data.update(top_level)
    await sock.send_raw(f"42{NS},{json.dumps(['event', data])}")
    await sock.until(lambda u: (u.get("delta") or {}).get(WHOAMI, {}).get(var("calls"), before) > before)


async def test_reflex_span_is_a_child_of_the_gateways_event_span_in_the_browsers_trace(stack, sockets):
    sock = await sockets(gateway=traced_gateway(stack), route="/whoami")
    trace_id, browser_span = secrets.token_hex(16), secrets.token_hex(8)
    await emit_whoami(sock, traceparent=f"00-{trace_id}-{browser_span}-01")

    otlp = stack.otlp
    gateway = otlp.wait_for(lambda s: s.service == SERVICE and s.trace_id == trace_id and s.name == f"event {HANDLER}")
    assert gateway.parent_span_id == browser_span, "the gateway continues the browser's trace"
    reflex = otlp.wait_for(lambda s: s.service == "shop-reflex" and s.trace_id == trace_id and s.name == HANDLER)
    assert reflex.parent_span_id == gateway.span_id, "Reflex's handler span is the gateway span's child"
    assert reflex.kind == 5, "a consumer span (a message from a remote parent)"


async def test_an_event_without_trace_context_starts_a_trace_that_reflex_joins(stack, sockets):
    sock = await sockets(gateway=traced_gateway(stack), route="/whoami")
    forged = "00-" + "ab" * 16 + "-" + "cd" * 8
    before = {s.span_id for s in list(stack.otlp.spans)}
    # Malformed (no flags): Reflex would start a trace of its own; the gateway starts one Reflex joins.
    await emit_whoami(sock, traceparent=forged)

    otlp = stack.otlp
    reflex = otlp.wait_for(
        lambda s: s.service == "shop-reflex"
        and s.name == HANDLER
        and s.span_id not in before
        and any(g.span_id == s.parent_span_id and g.service == SERVICE for g in otlp.spans)
    )
    gateway = otlp.wait_for(lambda s: s.service == SERVICE and s.span_id == reflex.parent_span_id)
    assert gateway.trace_id == reflex.trace_id != "ab" * 16
    assert gateway.parent_span_id == "", "a root span: the malformed traceparent was not believed"
