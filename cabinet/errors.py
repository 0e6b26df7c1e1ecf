"""Our own exceptions, mapped once to responses and CLI messages."""


class CabinetError(Exception):
    """Base of the errors a person can be shown."""

    status_code = 400

    def __init__(self, message="", **details):
        super().__init__(message)
        self.message = message
        self.details = details


class BadRequest(CabinetError):
    """The request is malformed (a field given twice, say): it changes nothing."""

    status_code = 400


class NotFound(CabinetError):
    """The thing asked for does not exist, or is not the asker's to see."""

    status_code = 404


class Forbidden(CabinetError):
    """The request is not allowed (bad signature, wrong owner)."""

    status_code = 403


class PaymentUnavailable(CabinetError):
    """Card payment cannot be offered to this contract now."""

    status_code = 409


class AmountOutOfRange(CabinetError):
    """The amount is outside the configuration's minimum and maximum."""


class TooManyRequests(CabinetError):
    """More of something than a limit allows for now: try again later."""

    status_code = 429


class Conflict(CabinetError):
    """The thing exists already."""

    status_code = 409
