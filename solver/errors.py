"""Errors a user can act on. The CLI prints `error: <message>` and exits with code 2."""


class FitplanError(ValueError):
    """Bad input: the message says what is wrong and how to fix it, in one line."""


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
