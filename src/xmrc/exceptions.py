"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class XmrcError(Exception):
    """A problem with the user's input (config, data file, model name): reported, never a traceback."""
