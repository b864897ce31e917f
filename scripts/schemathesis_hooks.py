"""Checks of scripts/schemathesis beyond schemathesis's own: what a schema cannot say.

Python's HTTP client reads a response with two `Content-Length` fields without a word, while
Node's `http`, `fetch` and the npm `eventsource` package refuse it with a parse error and never
show the status (issue 13, item 1). `message_framing` holds every response to RFC 9112 section 6:
at most one `Content-Length`, and never one beside `Transfer-Encoding`.
"""

import schemathesis

def _values(response, name):
    return [v for key, values in response.headers.items() if key.lower() == name for v in values]


@schemathesis.check
def message_framing(ctx, response, case):
    """At most one Content-Length, and none beside Transfer-Encoding (RFC 9112, 6.1 and 6.3)."""
    lengths = _values(response, "content-length")
    if len(lengths) > 1:
        raise AssertionError(
            f"{len(lengths)} Content-Length fields ({', '.join(lengths)}): a strict HTTP/1.1 "
            "client (Node's http, fetch, eventsource) refuses the response"
        )
    if lengths and _values(response, "transfer-encoding"):
        raise AssertionError("Content-Length beside Transfer-Encoding: the framing is ambiguous")
    return None
