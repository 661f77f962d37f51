"""The official Python client (lark-oapi), pointed at roomcast's fake gateway.

Run by the `conformance_official_python_client` test: it must connect,
ping, receive a fragmented v1 meeting-room event and acknowledge it. Prints
one `EVENT <uuid> <type> <uid>` line per event it receives.
"""

import os

import lark_oapi as lark


def on_event(data: lark.CustomizedEvent) -> None:
    ev = data.event or {}
    print("EVENT", data.uuid, ev.get("type"), ev.get("uid"), flush=True)


handler = (
    lark.EventDispatcherHandler.builder("", "")
    .register_p1_customized_event("third_party_meeting_room_event_created", on_event)
    .build()
)

client = lark.ws.Client(
    os.environ["APP_ID"],
    os.environ["APP_SECRET"],
    event_handler=handler,
    domain=os.environ["BASE_URL"],
    log_level=lark.LogLevel.DEBUG,
)
client.start()
