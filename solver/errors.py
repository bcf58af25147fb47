"""Errors a user can act on. The CLI prints `error: <message>` and exits with code 2.

Every message is one line of bounded length whatever it quotes: line breaks and control
characters in it are escaped, and quoted input is cut (`shown`), so a 100,000-character or
multi-line name never comes back whole (issue 18)."""

# Input echoed in a message is cut to this many characters, with an ellipsis and its length.
MAX_ECHO_CHARS = 80
# A whole message is cut at this length (the longest written ones are about 400 characters).
MAX_MESSAGE_CHARS = 1000


def _escaped(text: str) -> str:
    return "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii") for c in text)


def shown(text: object, limit: int = MAX_ECHO_CHARS) -> str:
    """`text` as a message quotes it: control characters and line breaks escaped, cut to `limit`
    characters with an ellipsis and its full length."""
    raw = str(text)
    if len(raw) > limit:
        return _escaped(raw[:limit]) + f"... ({len(raw):,} characters)"
    return _escaped(raw)


class FitplanError(ValueError):
    """Bad input: the message says what is wrong and how to fix it, in one line."""

    def __init__(self, message: object = "", *args: object) -> None:
        text = _escaped(str(message))
        if len(text) > MAX_MESSAGE_CHARS:
            text = text[:MAX_MESSAGE_CHARS] + "..."
        super().__init__(text, *args)


def validation_message(exc, default_where: str = "") -> str:
    """The first problem of a pydantic ValidationError as one line: `where: what`."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or default_where
    message = str(first.get("msg", exc)).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


class UnknownModelError(FitplanError):
    pass


class UnknownGpuError(FitplanError):
    pass


class ConfigFileError(FitplanError):
    """A config.json, YAML or JSON file that cannot be read or understood."""


class InvalidConfigurationError(FitplanError):
    """Numbers or combinations that cannot describe a training run (zero sizes, rank > hidden,
    quantization with full fine-tuning, bf16 on a GPU without it, ...)."""
