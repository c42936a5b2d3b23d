"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class XmrcError(Exception):
    """A problem with the user's input (config, data file, model name): reported, never a traceback."""


def check_choice(key: str, value, allowed) -> None:
    """One line naming `key`, the value given and the values allowed, when `value` is not one of them."""
    if value not in allowed:
        raise XmrcError(f"{key}: unknown value {value!r} (expected one of {', '.join(allowed)})")
