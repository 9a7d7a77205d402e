"""What the API answers, as dicts that also allow attribute access (``webhook.id`` as in
the seed's example, ``webhook["id"]`` as for any dict). Field names are the API's own."""

from typing import Any


class HeraldObject(dict):  # type: ignore[type-arg]
    """A JSON object of an answer. Keys that are also dict methods (``items``, ``keys``...)
    are reached with ``obj["items"]``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


def wrap(value: Any) -> Any:
    """Turns the dicts of a parsed JSON answer into HeraldObjects, all the way down."""
    if isinstance(value, dict):
        return HeraldObject({k: wrap(v) for k, v in value.items()})
    if isinstance(value, list):
        return [wrap(v) for v in value]
    return value
