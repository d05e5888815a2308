"""The base of every request and response shape in pai_lab, and the bounds requests share."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints


class Schema(BaseModel):
    # Unknown fields are refused, so a misspelt key is an error that names it, not a silent no-op.
    model_config = ConfigDict(extra="forbid")


# Bounds of request fields, so no request can make the server hold or store more than a person would type;
# a value past them is a 400 that names the field.
NAME_MAX = 128  # names of objects and members
TEXT_MAX = 4096  # descriptions, commands, paths, URLs, comments
LIST_MAX = 1000  # labels, members, packages to install...

Name = Annotated[str, StringConstraints(max_length=NAME_MAX)]
Text = Annotated[str, StringConstraints(max_length=TEXT_MAX)]
# A label or member name: not empty (an empty one used to fail in the domain, as a 500)
NonEmptyName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX)]


# Whole numbers a request gives (an item's seq, a version, an offset, a cursor) meet the store's 64-bit
# integers: a larger one is a 400 naming the field, never an overflow inside the store (a 500).
INT_MAX = 2**63 - 1
Int = Annotated[int, Field(ge=-INT_MAX - 1, le=INT_MAX)]


def whole_number(text: str) -> int | None:
    """``text`` as a whole number >= 0 the store can hold (ASCII digits only: ``'²'.isdigit()`` is true
    too), else None; for numbers inside paths and references (``items/3``, ``name:2``)."""
    if not (text.isascii() and text.isdigit()) or len(text.lstrip("0")) > len(str(INT_MAX)):
        return None
    value = int(text)
    return value if value <= INT_MAX else None


def bounded_list(**kw):
    """A list field of at most LIST_MAX items (the default, an empty list)."""
    return Field(default_factory=list, max_length=LIST_MAX, **kw)
