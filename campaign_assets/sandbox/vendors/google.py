"""What Google Docs, Sheets and Drive share: the error shape and the Drive file behind each document."""

from __future__ import annotations

from typing import Any, ClassVar

from campaign_assets.sandbox.config import VendorName
from campaign_assets.sandbox.state import AuthOutcome, SandboxState
from campaign_assets.sandbox.vendors.base import ApiError, ErrorStyle

DOCUMENT_MIME = "application/vnd.google-apps.document"
SPREADSHEET_MIME = "application/vnd.google-apps.spreadsheet"

# Which vendor object a Drive file of a given MIME type stands for.
DRIVE_FILE_OWNERS: dict[str, tuple[VendorName, str]] = {
    DOCUMENT_MIME: ("google-docs", "document"),
    SPREADSHEET_MIME: ("google-sheets", "spreadsheet"),
}

_CREDENTIALS_HINT = (
    "Expected OAuth 2 access token, login cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)


class GoogleErrors(ErrorStyle):
    """``{"error": {"code", "message", "status"}}``; Google sends no Retry-After on 429."""

    _statuses: ClassVar[dict[int, str]] = {
        400: "INVALID_ARGUMENT",
        401: "UNAUTHENTICATED",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        429: "RESOURCE_EXHAUSTED",
        500: "INTERNAL",
        503: "UNAVAILABLE",
        504: "DEADLINE_EXCEEDED",
    }

    def __init__(self, service: str) -> None:
        self.default_messages = {
            400: "Request contains an invalid argument.",
            401: f"Request had invalid authentication credentials. {_CREDENTIALS_HINT}",
            404: "Requested entity was not found.",
            429: (
                "Quota exceeded for quota metric 'Write requests' and limit 'Write requests per "
                f"minute per user' of service '{service}' for consumer 'project_number:000000000000'."
            ),
            500: "Internal error encountered.",
            503: "The service is currently unavailable.",
            504: "The request timed out. Please try again.",
        }

    def body(self, error: ApiError) -> dict[str, Any]:
        return {
            "error": {
                "code": error.status,
                "message": self.message(error),
                "status": self._statuses.get(error.status, "UNKNOWN"),
            }
        }

    def auth_failure(self, outcome: AuthOutcome) -> ApiError:
        if outcome == "missing":
            return ApiError(
                401, f"Request is missing required authentication credential. {_CREDENTIALS_HINT}"
            )
        return ApiError(401)


def add_drive_file(state: SandboxState, file_id: str, name: str, mime_type: str) -> None:
    """Register the Drive file that every Docs document and Sheets spreadsheet also is."""
    state.stores["google-drive"].add(
        "file", file_id, {"kind": "drive#file", "id": file_id, "name": name, "mimeType": mime_type}
    )
