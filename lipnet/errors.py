"""The one error every bad model file raises, shared by the loader's modules."""


class ModelFileError(ValueError):
    """A model folder or file that cannot be loaded, with the reason."""
