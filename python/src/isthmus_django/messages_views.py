"""``GET /_isthmus/messages``: the browser's pending Django messages, consumed, as JSON.

Messages added in Django views (``messages.success(request, ...)``) wait in Django's
message storage (cookie, session or both) until a page displays them. A page written in
Reflex asks for them with ``isthmus_reflex.fetch_messages()``: the browser calls this
view with its own cookies, so every storage backend works, and Django marks the messages
read (updating its cookie or session on this response) exactly when it hands them out;
none is lost and none is shown twice. The answer goes back through the browser to
``UserState.receive_messages``: messages are no proof of anything, only text to show.

``{"messages": [{"level": 25, "tag": "success", "text": "Saved."}, ...]}``, ``no-store``;
with no MessageMiddleware installed the list is empty.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache

from .views import login_not_required


@never_cache
@login_not_required
def pending_messages(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        response = JsonResponse({"messages": []}, status=405)
        response["Allow"] = "GET"
        return response
    items = []
    if hasattr(request, "_messages"):
        for message in messages.get_messages(request):
            items.append({"level": int(message.level), "tag": message.level_tag, "text": str(message)})
    return JsonResponse({"messages": items})
