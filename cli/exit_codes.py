"""Exit codes of every fitplan command (documented in the README)."""

EXIT_OK = 0  # a plan was found / the configuration fits
EXIT_BAD_INPUT = 2  # unknown model or GPU, nonsense numbers, malformed files, impossible pins
EXIT_NOTHING_FITS = 3  # nothing fits / the configuration does not fit
